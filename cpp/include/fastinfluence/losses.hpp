// Convex losses of a linear predictor eta = x.w + b: value, first and second
// derivative in eta, and the change of value for a shift of eta.
//
// Every function is stable for |eta| up to 1e4 (no overflow, no NaN), except
// Poisson's exp(eta), whose value genuinely exceeds double range above
// eta ~ 709.78 and is then +inf (never NaN).
#pragma once

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace fastinfluence {

// softplus(x) = log(1 + exp(x)) without overflow.
inline double softplus(double x) { return std::fmax(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// sigmoid(x) = 1 / (1 + exp(-x)) without overflow.
inline double sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// From e = exp(-|x|), computed once: log1p(e) (softplus(x) - max(x, 0)), sigmoid(x) and
// sigmoid(x) sigmoid(-x), each as softplus and sigmoid above compute it.
inline void logistic_terms(double x, double& log1p_e, double& sigmoid_x, double& curvature) {
  const double e = std::exp(-std::fabs(x));
  log1p_e = std::log1p(e);
  const double big = 1.0 / (1.0 + e), small = e / (1.0 + e);  // sigmoid(|x|), sigmoid(-|x|)
  sigmoid_x = x >= 0.0 ? big : small;
  curvature = sigmoid_x * (x >= 0.0 ? small : big);
}

// softplus(a + delta) - softplus(a) without cancellation when delta is small:
// = log((1 + e^(a+delta)) / (1 + e^a)) = log1p(sigmoid(a) * expm1(delta)).
inline double softplus_difference(double a, double delta) {
  if (std::fabs(delta) <= 1.0) return std::log1p(sigmoid(a) * std::expm1(delta));
  return softplus(a + delta) - softplus(a);
}

// 0.5 * (eta - y)^2
struct SquaredLoss {
  double value(double y, double eta) const {
    const double r = eta - y;
    return 0.5 * r * r;
  }
  double d1(double y, double eta) const { return eta - y; }
  double d2(double, double) const { return 1.0; }
  void terms(double y, double eta, double& value, double& d1, double& d2) const {
    value = this->value(y, eta), d1 = this->d1(y, eta), d2 = 1.0;
  }
  // value(y, eta + delta) - value(y, eta) = delta * (eta - y) + delta^2 / 2
  double difference(double y, double eta, double delta) const { return delta * ((eta - y) + 0.5 * delta); }
};

// Binary cross-entropy with labels y in {0, 1}: log(1 + e^eta) - y * eta.
struct LogisticLoss {
  // (1 - y) softplus(eta) + y softplus(-eta): the same value, no cancellation at large |eta|.
  double value(double y, double eta) const { return (1.0 - y) * softplus(eta) + y * softplus(-eta); }
  double d1(double y, double eta) const { return sigmoid(eta) - y; }
  double d2(double, double eta) const { return sigmoid(eta) * sigmoid(-eta); }
  double difference(double y, double eta, double delta) const { return softplus_difference(eta, delta) - y * delta; }
  // The three above from one exp and one log1p (seven otherwise), bit for bit the same.
  void terms(double y, double eta, double& value, double& d1, double& d2) const {
    double log1p_e, s, curvature;
    logistic_terms(eta, log1p_e, s, curvature);
    value = (1.0 - y) * (std::fmax(eta, 0.0) + log1p_e) + y * (std::fmax(-eta, 0.0) + log1p_e);
    d1 = s - y, d2 = curvature;
  }
};

// Smooth hinge of Koh & Liang (2017, section 4.2) with temperature t and labels
// y in {-1, +1}: t * log(1 + exp((1 - y * eta) / t)); t -> 0 gives the hinge.
struct SmoothHingeLoss {
  double t = 1.0;
  double margin(double y, double eta) const { return (1.0 - y * eta) / t; }
  double value(double y, double eta) const { return t * softplus(margin(y, eta)); }
  // d/deta = t * sigmoid(u) * (-y / t)
  double d1(double y, double eta) const { return -y * sigmoid(margin(y, eta)); }
  // d2/deta2 = y^2 sigmoid(u) (1 - sigmoid(u)) / t, with y^2 = 1
  double d2(double y, double eta) const {
    const double u = margin(y, eta);
    return sigmoid(u) * sigmoid(-u) / t;
  }
  double difference(double y, double eta, double delta) const {
    return t * softplus_difference(margin(y, eta), -y * delta / t);
  }
  void terms(double y, double eta, double& value, double& d1, double& d2) const {
    const double u = margin(y, eta);
    double log1p_e, s, curvature;
    logistic_terms(u, log1p_e, s, curvature);
    value = t * (std::fmax(u, 0.0) + log1p_e);
    d1 = -y * s, d2 = curvature / t;
  }
};

// Poisson negative log-likelihood with log link (dropping log y!): exp(eta) - y * eta.
struct PoissonLoss {
  double value(double y, double eta) const {
    const double mu = std::exp(eta);
    // y * eta is 0 when y == 0 even for infinite eta.
    return y == 0.0 ? mu : mu - y * eta;
  }
  double d1(double y, double eta) const { return std::exp(eta) - y; }
  double d2(double, double eta) const { return std::exp(eta); }
  // e^(eta + delta) - e^eta - y delta = e^eta expm1(delta) - y delta
  double difference(double y, double eta, double delta) const { return std::exp(eta) * std::expm1(delta) - y * delta; }
  void terms(double y, double eta, double& value, double& d1, double& d2) const {
    const double mu = std::exp(eta);
    value = y == 0.0 ? mu : mu - y * eta;
    d1 = mu - y, d2 = mu;
  }
};

enum class LossKind : int { squared = 0, logistic = 1, smooth_hinge = 2, poisson = 3 };

// A loss chosen at run time; hot loops are compiled once per loss by
// visit_loss, so no per-element branch on the kind.
struct LossSpec {
  LossKind kind = LossKind::squared;
  double t = 1.0;  // smooth-hinge temperature, ignored by the other losses
};

template <class Visitor>
decltype(auto) visit_loss(const LossSpec& spec, Visitor&& visitor) {
  switch (spec.kind) {
    case LossKind::squared:
      return visitor(SquaredLoss{});
    case LossKind::logistic:
      return visitor(LogisticLoss{});
    case LossKind::smooth_hinge:
      if (!(spec.t > 0.0)) throw std::invalid_argument("smooth hinge temperature t must be > 0");
      return visitor(SmoothHingeLoss{spec.t});
    case LossKind::poisson:
      return visitor(PoissonLoss{});
  }
  throw std::invalid_argument("unknown loss kind " + std::to_string(static_cast<int>(spec.kind)));
}

// Throws std::invalid_argument for an unknown kind or a smooth hinge with t <= 0:
// kernels call it before their parallel region.
inline void check_loss(const LossSpec& spec) {
  visit_loss(spec, [](const auto&) {});
}

// The same for n rows at a time: the kind is dispatched once, and each loop is
// compiled once per loss (not once per kernel and data layout). Unweighted.

// value_i = loss(y_i, eta_i), d1_i = loss'(y_i, eta_i), d2_i = loss''(y_i, eta_i)
inline void loss_terms(const LossSpec& spec, const double* y, const double* eta, std::ptrdiff_t n, double* value,
                       double* d1, double* d2) {
  visit_loss(spec, [&](const auto& loss) {
    for (std::ptrdiff_t i = 0; i < n; ++i) loss.terms(y[i], eta[i], value[i], d1[i], d2[i]);
  });
}

// d2_i = loss''(y_i, eta_i)
inline void loss_second_derivatives(const LossSpec& spec, const double* y, const double* eta, std::ptrdiff_t n,
                                    double* d2) {
  visit_loss(spec, [&](const auto& loss) {
    for (std::ptrdiff_t i = 0; i < n; ++i) d2[i] = loss.d2(y[i], eta[i]);
  });
}

// out_i = loss(y_i, eta_i + delta_i) - loss(y_i, eta_i)
inline void loss_differences(const LossSpec& spec, const double* y, const double* eta, const double* delta,
                             std::ptrdiff_t n, double* out) {
  visit_loss(spec, [&](const auto& loss) {
    for (std::ptrdiff_t i = 0; i < n; ++i) out[i] = loss.difference(y[i], eta[i], delta[i]);
  });
}

}  // namespace fastinfluence
