// The one compiled copy of the multinomial scoring products for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/multinomial_scoring.hpp>

namespace fastinfluence {
FASTINFLUENCE_MULTINOMIAL_SCORING_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
