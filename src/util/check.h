// Checked-error macro for public entry points (in the manner of FAISS_THROW_IF_NOT_FMT): the message
// is built with operator<< only when the check fails.
#pragma once

#include <sstream>

#include "sinkhorn/error.h"

#define SINKHORN_CHECK(condition, message)                 \
  do {                                                     \
    if (!(condition)) {                                    \
      std::ostringstream sinkhorn_check_stream_;           \
      sinkhorn_check_stream_ << message;                   \
      throw ::sinkhorn::Error(sinkhorn_check_stream_.str()); \
    }                                                      \
  } while (false)
