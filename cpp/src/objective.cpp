// The one compiled copy of the objective passes for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/objective.hpp>

namespace fastinfluence {
FASTINFLUENCE_OBJECTIVE_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
