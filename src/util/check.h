// Checked-error macros for public entry points (in the manner of FAISS_THROW_IF_NOT_FMT): the
// message is built with operator<< only when the check fails.
//   SINKHORN_CHECK(condition, message)            bad input; the message names the argument
//   SINKHORN_CHECK_ARG(condition, name, message)  bad input in argument `name` (the library's name
//                                                 of it); the message says the problem alone
//   SINKHORN_INTERNAL_CHECK(condition, message)   an invariant of our own code (InternalError)
#pragma once

#include <sstream>

#include "sinkhorn/error.h"

#define SINKHORN_CHECK(condition, message)                   \
  do {                                                       \
    if (!(condition)) {                                      \
      std::ostringstream sinkhorn_check_stream_;             \
      sinkhorn_check_stream_ << message;                     \
      throw ::sinkhorn::Error(sinkhorn_check_stream_.str()); \
    }                                                        \
  } while (false)

#define SINKHORN_CHECK_ARG(condition, argument, message)                 \
  do {                                                                   \
    if (!(condition)) {                                                  \
      std::ostringstream sinkhorn_check_stream_;                         \
      sinkhorn_check_stream_ << message;                                 \
      throw ::sinkhorn::Error((argument), sinkhorn_check_stream_.str()); \
    }                                                                    \
  } while (false)

#define SINKHORN_INTERNAL_CHECK(condition, message)                                              \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::ostringstream sinkhorn_check_stream_;                                                 \
      sinkhorn_check_stream_ << message << " (" << __FILE__ << ":" << __LINE__ << ")";           \
      throw ::sinkhorn::InternalError(sinkhorn_check_stream_.str());                             \
    }                                                                                            \
  } while (false)
