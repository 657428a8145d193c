// The one compiled copy of the Gram products for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/gram.hpp>

namespace fastinfluence {
FASTINFLUENCE_GRAM_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
