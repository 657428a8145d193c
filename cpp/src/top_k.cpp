// The one compiled copy of streaming top-k for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/top_k.hpp>

namespace fastinfluence {
FASTINFLUENCE_TOP_K_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
