# `cmake --install build --prefix P`: the public headers, the library and a CMake package, so that
# another project does
#   find_package(sinkhorn REQUIRED)            # with -DCMAKE_PREFIX_PATH=P
#   target_link_libraries(app PRIVATE sinkhorn::sinkhorn)
# The package finds LibTorch where this build found it (the same PyTorch), and the other
# dependencies with find_dependency; the consumer test is tests/consumer/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(sinkhorn_core PROPERTIES EXPORT_NAME sinkhorn)
set(_sinkhorn_exported sinkhorn_core sinkhorn_libtorch_cpu sinkhorn_openmp)
# The CUDA module is loaded at run time, never linked: it goes beside the library, where the
# library looks for it (platform/cuda_module_loader.h).
if(SINKHORN_HAVE_CUDA_REDUCER)
  install(TARGETS sinkhorn_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(TARGETS ${_sinkhorn_exported} EXPORT sinkhornTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/sinkhorn DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(_sinkhorn_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/sinkhorn)
install(EXPORT sinkhornTargets NAMESPACE sinkhorn:: DESTINATION ${_sinkhorn_cmake_dir})
configure_package_config_file(cmake/sinkhornConfig.cmake.in "${CMAKE_BINARY_DIR}/sinkhornConfig.cmake"
  INSTALL_DESTINATION ${_sinkhorn_cmake_dir})
write_basic_package_version_file("${CMAKE_BINARY_DIR}/sinkhornConfigVersion.cmake" COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_BINARY_DIR}/sinkhornConfig.cmake" "${CMAKE_BINARY_DIR}/sinkhornConfigVersion.cmake"
  DESTINATION ${_sinkhorn_cmake_dir})
