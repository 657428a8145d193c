// The one compiled copy of the scoring products for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/scoring.hpp>

namespace fastinfluence {
FASTINFLUENCE_SCORING_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
