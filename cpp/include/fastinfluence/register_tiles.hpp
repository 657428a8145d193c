// Register-tiled Gram products over row-major blocks, for CPUs with 32 vector registers (the
// avx512 variant): the lower triangle of a block's Z^T Z, Z = diag(sqrt c) X_b, the Hessian's
// rank update. Eigen's triangular product packs both operands and cuts d = 100 into 24-row
// micro-panels with a remainder, then a GEMM below the diagonal panel; the tiles below read Z
// in place. On a 2-core AMD EPYC (Zen 5), n = 100,000, d = 100, two threads, kernels.hessian
// took 20.5-21.3 ms against 22.6-23.8 ms through Eigen (three alternated runs, medians of 31).
// The same tiles for the score product x_i^T M (scaled_row_products) measured no faster than
// Eigen's kernel there (33-35 against 32-36 ms), so that product keeps Eigen's; with 16
// registers (avx2, baseline) a tile has too few accumulators, and those variants keep Eigen's
// kernels throughout.
//
// A tile holds R x NP packets of the result in registers and runs over all rows of the block:
// each row broadcasts R scalars and loads NP packets, for R * NP fused multiply-adds. Every
// entry is summed over the block's rows in order from zero and then added to G, with unaligned
// loads, so results depend neither on the tiling, nor on the addresses, nor on the number of
// threads.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cassert>
#include <type_traits>

namespace fastinfluence {
namespace tiles {

using Eigen::Index;
using Packet = Eigen::internal::packet_traits<double>::type;
inline constexpr int kPacket = Eigen::internal::packet_traits<double>::size;

#if defined(EIGEN_VECTORIZE_AVX512)
inline constexpr bool kEnabled = true;
#else
inline constexpr bool kEnabled = false;
#endif

inline constexpr int kRows = 8;     // R: rows of a full tile
inline constexpr int kPackets = 3;  // NP: packets per row of a full tile (8 x 3 + 3 + 1 <= 32 registers)

// Columns rounded up to whole packets: the padded row stride of Z.
inline Index padded(Index cols) { return (cols + kPacket - 1) / kPacket * kPacket; }

// acc[r][q] = sum_k a[r * a_row + k * a_depth] * b[k * b_depth + q * P ...], k < depth, in order.
template <int R, int NP>
struct Tile {
  Packet acc[R][NP];

  void run(const double* a, Index a_row, Index a_depth, const double* b, Index b_depth, Index depth) {
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < NP; ++q) acc[r][q] = Eigen::internal::pset1<Packet>(0.0);
    for (Index k = 0; k < depth; ++k) {
      Packet bk[NP];
      for (int q = 0; q < NP; ++q) bk[q] = Eigen::internal::ploadu<Packet>(b + k * b_depth + q * kPacket);
      for (int r = 0; r < R; ++r) {
        const Packet ak = Eigen::internal::pset1<Packet>(a[r * a_row + k * a_depth]);
        for (int q = 0; q < NP; ++q) acc[r][q] = Eigen::internal::pmadd(ak, bk[q], acc[r][q]);
      }
    }
  }
  // Calls f(r, t) for each row r of the tile, t its NP * P values.
  template <class F>
  void each_row(F&& f) const {
    alignas(64) double t[NP * kPacket];
    for (int r = 0; r < R; ++r) {
      for (int q = 0; q < NP; ++q) Eigen::internal::pstore(t + q * kPacket, acc[r][q]);
      f(r, t);
    }
  }
};

template <int N>
using Count = std::integral_constant<int, N>;

// Calls f(Count<R>, i) over rows [0, count) in tiles of R = kRows, then 4, 2, 1 rows.
template <class F>
void over_rows(Index count, F&& f) {
  Index i = 0;
  for (; i + kRows <= count; i += kRows) f(Count<kRows>{}, i);
  if (i + 4 <= count) f(Count<4>{}, i), i += 4;
  if (i + 2 <= count) f(Count<2>{}, i), i += 2;
  if (i < count) f(Count<1>{}, i);
}

// Calls f(Count<NP>, j) over columns [first, cols) in strips of NP = kPackets packets, the last
// one as many packets as its columns need; first is a multiple of a strip, and reading NP
// packets from column j stays within padded(cols).
inline constexpr Index kStrip = Index{kPackets} * kPacket;
template <class F>
void over_strips(Index first, Index cols, F&& f) {
  Index j = first;
  for (; j + kStrip <= cols; j += kStrip) f(Count<kPackets>{}, j);
  const Index left = cols - j;  // fewer than kStrip: ceil(left / P) packets, within padded(cols)
  static_assert(kPackets == 3);
  if (left > 2 * kPacket)
    f(Count<3>{}, j);
  else if (left > kPacket)
    f(Count<2>{}, j);
  else if (left > 0)
    f(Count<1>{}, j);
}

// Columns [j0, j1) of the lower triangle of G += alpha Z^T Z, for Z (nb x (d - j0)) row-major
// holding columns j0 .. d - 1 with row stride ldz >= padded(d - j0), zero past d - j0, and G
// column-major (ldg): G(c, r) for r in [j0, j1), c in [r, d). In G's memory G(c, r) is the row-major
// entry (r, c) of the upper triangle, so a tile of rows r writes along G's columns.
inline void gram_lower(const double* z, Index ldz, Index nb, Index d, Index j0, Index j1, double alpha, double* G,
                       Index ldg) {
  assert(ldz >= padded(d - j0));
  const Index cols = d - j0;
  over_rows(j1 - j0, [&](auto rows, Index r0) {  // r0 and c0 count from column j0
    constexpr int R = decltype(rows)::value;
    over_strips(r0 / kStrip * kStrip, cols, [&](auto np, Index c0) {
      constexpr int NP = decltype(np)::value;
      Tile<R, NP> tile;
      tile.run(z + r0, 1, ldz, z + c0, ldz, nb);
      const Index width = std::min<Index>(Index{NP} * kPacket, cols - c0);
      tile.each_row([&](int r, const double* t) {
        const Index row = r0 + r;
        double* g = G + (j0 + row) * ldg + j0 + c0;  // &G(j0 + c0, j0 + row)
        for (Index c = std::max<Index>(0, row - c0); c < width; ++c) g[c] += alpha * t[c];
      });
    });
  });
}

}  // namespace tiles
}  // namespace fastinfluence
