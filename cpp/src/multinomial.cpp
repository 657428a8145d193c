// The one compiled copy of the multinomial loss's passes for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/multinomial.hpp>

namespace fastinfluence {
FASTINFLUENCE_MULTINOMIAL_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
