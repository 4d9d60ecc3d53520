# sinkhorn_find_torch(CMAKE_PREFIX): find_package(Torch) from the chosen interpreter's PyTorch
# (torch.utils.cmake_prefix_path) and nothing else. TorchConfig looks for libtorch, libc10,
# libc10_cuda and libkineto with find_library(... PATHS <its lib folder>), and find_library tries
# the system's folders before PATHS: on a Debian machine with libtorch-dev (which python3-torch
# recommends) it would link /usr/lib/x86_64-linux-gnu/libtorch.so beside the environment's
# headers. So each is looked up here first, in the environment's torch/lib only; one it lacks is
# set empty, which TorchConfig reads as "not found" without searching further. A configure that
# still ends with another LibTorch stops with a message naming both.
macro(sinkhorn_find_torch _sinkhorn_cmake_prefix)
  get_filename_component(SINKHORN_TORCH_LIBRARY_DIR "${_sinkhorn_cmake_prefix}/../../lib" ABSOLUTE)
  foreach(_sinkhorn_entry TORCH_LIBRARY:torch c10_LIBRARY:c10 C10_CUDA_LIBRARY:c10_cuda kineto_LIBRARY:kineto)
    string(REPLACE ":" ";" _sinkhorn_entry "${_sinkhorn_entry}")
    list(GET _sinkhorn_entry 0 _sinkhorn_variable)
    list(GET _sinkhorn_entry 1 _sinkhorn_name)
    if(NOT DEFINED CACHE{${_sinkhorn_variable}} OR "${${_sinkhorn_variable}}" MATCHES "NOTFOUND$")
      find_library(${_sinkhorn_variable} ${_sinkhorn_name} PATHS "${SINKHORN_TORCH_LIBRARY_DIR}" NO_DEFAULT_PATH)
      if(NOT ${_sinkhorn_variable})
        set(${_sinkhorn_variable} "" CACHE FILEPATH "not in ${SINKHORN_TORCH_LIBRARY_DIR}" FORCE)
      endif()
    endif()
  endforeach()
  find_package(Torch REQUIRED CONFIG PATHS "${_sinkhorn_cmake_prefix}/Torch" NO_DEFAULT_PATH)
  get_filename_component(_sinkhorn_found_dir "${TORCH_LIBRARY}" DIRECTORY)
  if(NOT _sinkhorn_found_dir STREQUAL SINKHORN_TORCH_LIBRARY_DIR)
    message(FATAL_ERROR "sinkhorn: LibTorch resolved to ${TORCH_LIBRARY}, not the environment's "
                        "${SINKHORN_TORCH_LIBRARY_DIR}: another LibTorch is on the search path. Clear the cache "
                        "(rm -rf the build folder) or pass -DTORCH_LIBRARY=${SINKHORN_TORCH_LIBRARY_DIR}/libtorch.so")
  endif()
  foreach(_sinkhorn_library IN LISTS TORCH_LIBRARIES)
    if(_sinkhorn_library MATCHES "^/" AND _sinkhorn_library MATCHES "(torch|c10|kineto)[^/]*\\.so$")
      get_filename_component(_sinkhorn_library_dir "${_sinkhorn_library}" DIRECTORY)
      if(NOT _sinkhorn_library_dir STREQUAL SINKHORN_TORCH_LIBRARY_DIR)
        message(FATAL_ERROR "sinkhorn: TORCH_LIBRARIES holds ${_sinkhorn_library}, not from the environment's "
                            "${SINKHORN_TORCH_LIBRARY_DIR}")
      endif()
    endif()
  endforeach()
endmacro()
