// The whole header-only core: include this one file.
#pragma once

#include "buffers.hpp"
#include "config.hpp"
#include "kernels.hpp"
#include "losses.hpp"
#include "parallel.hpp"
#include "solvers.hpp"
