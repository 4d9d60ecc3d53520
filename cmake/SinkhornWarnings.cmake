# Warnings for the project's own code (not for LibTorch's headers, which are included as system).
set(SINKHORN_WARNINGS -Wall -Wextra -Wno-unused-parameter)
