# The Python package `sinkhorn`: the extension sinkhorn._C (python/src/module.cpp, pybind11 from
# the PyTorch wheel's own headers, so the casters are LibTorch's) and the pure-Python layer
# (python/sinkhorn/). In the build tree both are staged in ${CMAKE_BINARY_DIR}/python/sinkhorn and
# ${CMAKE_BINARY_DIR}/sinkhorn-python runs SINKHORN_PYTHON with that folder importable; under
# scikit-build-core (pip install .) the module is installed next to the Python files.
find_package(Python3 COMPONENTS Interpreter Development.Module)
set(_sinkhorn_torch_python "${_sinkhorn_torch_lib_dir}/libtorch_python.so")
if(NOT Python3_Development.Module_FOUND OR NOT EXISTS "${_sinkhorn_torch_python}")
  if(SKBUILD OR SINKHORN_BUILD_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "sinkhorn: the Python package needs the headers of ${Python3_EXECUTABLE} (python3-dev) and "
                        "PyTorch's libtorch_python.so (${_sinkhorn_torch_python})")
  endif()
  message(STATUS "sinkhorn: Python package OFF (no Python headers for ${Python3_EXECUTABLE}, or no libtorch_python)")
  return()
endif()

Python3_add_library(sinkhorn_python MODULE WITH_SOABI python/src/module.cpp)
set_target_properties(sinkhorn_python PROPERTIES OUTPUT_NAME _C
  LIBRARY_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/python/sinkhorn" CXX_VISIBILITY_PRESET hidden)
target_link_libraries(sinkhorn_python PRIVATE sinkhorn_core "${_sinkhorn_torch_python}")
target_include_directories(sinkhorn_python PRIVATE ${PROJECT_SOURCE_DIR}/src)
target_compile_definitions(sinkhorn_python PRIVATE TORCH_EXTENSION_NAME=_C SINKHORN_VERSION="${PROJECT_VERSION}")
target_compile_options(sinkhorn_python PRIVATE ${SINKHORN_WARNINGS})

# The Python files, copied beside the module at every build (edits reach the launcher).
file(GLOB _sinkhorn_python_sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/python/sinkhorn/*.py")
set(_sinkhorn_staged)
foreach(source ${_sinkhorn_python_sources})
  get_filename_component(name "${source}" NAME)
  set(staged "${CMAKE_BINARY_DIR}/python/sinkhorn/${name}")
  add_custom_command(OUTPUT "${staged}" COMMAND ${CMAKE_COMMAND} -E copy "${source}" "${staged}" DEPENDS "${source}")
  list(APPEND _sinkhorn_staged "${staged}")
endforeach()
add_custom_target(sinkhorn_python_files ALL DEPENDS ${_sinkhorn_staged})
add_dependencies(sinkhorn_python sinkhorn_python_files)

# build/sinkhorn-python: the build's interpreter with the freshly built package importable.
file(WRITE "${CMAKE_BINARY_DIR}/sinkhorn-python"
  "#!/bin/sh\n"
  "# Runs ${SINKHORN_PYTHON} (the Python whose PyTorch this build links) with the sinkhorn package\n"
  "# of this build tree importable. Written by CMake (cmake/SinkhornPython.cmake).\n"
  "PYTHONPATH=\"${CMAKE_BINARY_DIR}/python\${PYTHONPATH:+:\$PYTHONPATH}\" exec \"${SINKHORN_PYTHON}\" \"\$@\"\n")
file(CHMOD "${CMAKE_BINARY_DIR}/sinkhorn-python" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
     GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

if(SKBUILD)
  install(TARGETS sinkhorn_python LIBRARY DESTINATION sinkhorn)
  # The CUDA module beside the extension, where the library looks first (platform/cuda_module_loader.h).
  if(SINKHORN_HAVE_CUDA_REDUCER)
    install(TARGETS sinkhorn_cuda LIBRARY DESTINATION sinkhorn)
  endif()
endif()
set(SINKHORN_HAVE_PYTHON ON)
message(STATUS "sinkhorn: Python package ON (${Python3_EXECUTABLE}, launcher ${CMAKE_BINARY_DIR}/sinkhorn-python)")
