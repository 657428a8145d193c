// The whole header-only core (Eigen and the standard library only): include
// this one file. One header per concept:
//   losses     the four losses and their derivatives
//   problem    the objective's data (X, y, weights, intercept, l2) and row blocks
//   objective  value, gradient, Hessian and per-row derivatives in fused passes
//   gram       Gram products: Hessian-vector products, regularised Gram, diagonal
//   scoring    scaled row products, quadratic forms, loo loss change, perturbation loss
//   top_k      streaming top-k of the score matrix; screening: its float32 pass
//   magnitude  the largest |value| of a buffer, for the input checks
//   multinomial, multinomial_scoring: the softmax loss of K classes, its passes and scoring products
//   solvers    Cholesky, conjugate gradient, LiSSA
//   parallel, buffers, config: row-chunk parallelism, huge-page buffers, build info
#pragma once

#include "buffers.hpp"
#include "config.hpp"
#include "gram.hpp"
#include "losses.hpp"
#include "magnitude.hpp"
#include "multinomial.hpp"
#include "multinomial_scoring.hpp"
#include "objective.hpp"
#include "parallel.hpp"
#include "problem.hpp"
#include "scoring.hpp"
#include "screening.hpp"
#include "solvers.hpp"
#include "top_k.hpp"
