// The version mark of libsinkhorn_cuda.so (platform/cuda_module_loader.h): the loader passes over
// a file without it. Its name changes with any table of symbols the module exports.
extern "C" __attribute__((visibility("default"))) void sinkhorn_cuda_module_v3() {}
