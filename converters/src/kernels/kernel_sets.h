// The instruction-set variants compiled into the library (each defined in its own file,
// compiled with its own target flags; see CMakeLists.txt).
#ifndef TFCOMPRESS_KERNELS_KERNEL_SETS_H_
#define TFCOMPRESS_KERNELS_KERNEL_SETS_H_

#include "kernels/binary_conv.h"

namespace tfcompress {

extern const KernelSet kScalarKernel;
#if defined(TFCOMPRESS_HAVE_AVX2)
extern const KernelSet kAvx2Kernel;
#endif
#if defined(TFCOMPRESS_HAVE_AVX512)
extern const KernelSet kAvx512Kernel;
#endif
#if defined(TFCOMPRESS_HAVE_NEON)
extern const KernelSet kNeonKernel;
#endif

}  // namespace tfcompress

#endif  // TFCOMPRESS_KERNELS_KERNEL_SETS_H_
