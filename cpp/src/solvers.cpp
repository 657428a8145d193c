// The one compiled copy of CG and LiSSA over the Gram product for DesignMatrix (every layout
// the Python module accepts); other translation units see extern declarations.
#include <fastinfluence/solvers.hpp>

namespace fastinfluence {
FASTINFLUENCE_SOLVER_INSTANCES(, DesignMatrix)
}  // namespace fastinfluence
