// ratepool: hierarchical Gamma–Negative-Binomial model for event counts per entity per window.
//
//   mu      ~ Exponential(mu_rate)                  population mean rate
//   alpha   ~ HalfNormal(alpha_sd)                  concentration: E[theta_i] = mu, Var(theta_i) = mu / alpha
//   phi     ~ HalfNormal(phi_sd)                    overdispersion: Var(y) = theta + theta^2 / phi
//   theta_i ~ Gamma(shape = mu * alpha, rate = alpha)          i = 1..J
//   y_ij    ~ NegBinomial2(mean = theta_i, dispersion = phi)   j = 1..n_i
//
// Options, each off by default (with all of them off the program is the model above, draw for
// draw):
//   exposure        y_ij ~ NegBinomial2(E_ij * theta_i, phi): theta_i is then a rate per unit
//                   of exposure (E_ij = 1 gives the model above).
//   covariates      mu_i = mu * exp(x_i' beta), beta ~ Normal(0, beta_sd), x_i centred and
//                   scaled by ratepool; theta_i ~ Gamma(mu_i * alpha, alpha), so E[theta_i] =
//                   mu_i and Var(theta_i) = mu_i / alpha (P = 0 gives mu_i = mu).
//   zero-inflation  y_ij ~ pi * [y = 0] + (1 - pi) * NegBinomial2(E_ij * theta_i, phi),
//                   pi ~ Beta(1, 1): a share pi of windows are structural zeros.
//   bytes           a separate factor of the joint density, sharing no parameter with the
//                   counts. Generative story: window j of entity i scales its events' sizes by
//                   a factor exp(w_ij), w_ij ~ Normal(-sigma_w^2 / 2, sigma_w) (mean 1), and its
//                   y_ij events have independent LogNormal(m_i - sigma_e^2 / 2 + w_ij, sigma_e)
//                   sizes (mean exp(m_i + w_ij)); b_ij is their sum. The law of
//                   l_ij = log(b_ij / y_ij) given y_ij is matched by a Normal with the same
//                   mean and variance of b / y (Fenton–Wilkinson):
//                     l_ij ~ Normal(m_i - v_ij / 2, sqrt(v_ij)),
//                     v_ij = sigma_w^2 + log1p(expm1(sigma_e^2) / y_ij)   (~ sigma_w^2 + sigma_e^2 / y_ij),
//                   i.e. b_ij ~ LogNormal(log(y_ij) + m_i - v_ij / 2, sqrt(v_ij)), exact at y = 1
//                   and as y grows; then
//                     m_i ~ Normal(m0, tau),  m0 ~ Normal(m0_prior_mean, m0_prior_sd),
//                     tau ~ HalfNormal(tau_sd),  sigma_w ~ HalfNormal(sigma_w_sd),
//                     sigma_e ~ HalfNormal(sigma_e_sd).
//                   exp(m_i) is entity i's MEAN bytes per event, E[b_ij / y_ij] at every count
//                   y_ij (so m_i means the same for entities with few and many events);
//                   exp(m_i - (sigma_w^2 + sigma_e^2) / 2) is the median size of one event.
//                   The window variance shrinks with the events (sigma_e: independent event
//                   sizes) down to sigma_w^2 (window-level shocks shared by its events). A
//                   window with no event carries 0 bytes (a point mass: no density).
//
// The target is the exact, fully normalised joint log density (every `target +=` keeps its
// constants, and the half-normals include their factor 2), so log_prob without the Jacobian
// equals sum of scipy log densities.
//
// Data JSON for running this file directly with CmdStan (`ratepool export-data` writes it):
//   {
//     "J": 3,                        number of entities (labels mapped to 1..J)
//     "N": 5,                        number of observations given row by row (may be 0)
//     "entity": [1, 1, 2, 3, 3],     1-based entity index of each observation
//     "y": [0, 4, 2, 7, 1],          count of each observation
//     "n_windows": [2, 1, 2],        n_i: windows per entity
//     "entity_total": [4, 2, 8],     S_i: total count per entity (real: may exceed 2^31 - 1)
//     "K": 5,                        number of distinct count values over all windows
//     "count_value": [0, 1, 2, 4, 7],  the distinct values k
//     "count_freq": [1, 1, 1, 1, 1],   m_k: windows with count k (real)
//     "mu_rate": 0.1, "alpha_sd": 2.0, "phi_sd": 2.0,
//     "use_sufficient_stats": 1,     1: likelihood from (n_i, S_i, m_k), O(J + K) per gradient;
//                                    0: one neg_binomial_2 term per observation (needs N = sum n_i)
//     "prior_only": 0,               1: drop the likelihood; generated quantities then come from
//                                    exact ancestral prior draws (run with the fixed_param sampler)
//     "non_centered": 0,             1: sample theta_raw = alpha * theta ~ Gamma(mu * alpha, 1)
//                                    (the rates are then output as theta_from_raw)
//     "obs_predictions": 1,          1: y_rep and log_lik per observation (N numbers each per draw)
//     "entity_predictions": 1,       1: per-entity predictive counts, totals, zeros and log_lik
//     "has_exposure": 0,             1: "exposure" holds E_ij for each of the N rows
//     "exposure": [],
//     "zero_inflation": 0,           1: the zero-inflated likelihood (parameter pi)
//     "G": 0,                        groups of windows sharing (entity, exposure); used (G > 0)
//     "group_entity": [],            whenever exposure or zero-inflation is on:
//     "group_exposure": [],            entity index, exposure value E_g,
//     "group_windows": [],             windows n_g, zero windows z_g and total count S_g of
//     "group_zeros": [],               each group (without exposure: one group per entity,
//     "group_total": [],               E_g = 1)
//     "P": 0, "X": [[], [], []],     entity covariates, J x P, centred and scaled
//     "beta_sd": 1.0,                prior sd of each coefficient beta_p
//     "has_bytes": 0,                1: the bytes factor (parameters m0, tau, sigma_w, sigma_e, m)
//     "bytes": [],                   b_ij of each of the N rows (0 where y = 0), when N > 0
//     "BG": 0,                       groups of windows with events sharing (entity, count y);
//     "bytes_group_entity": [],      per group: its entity, its count y > 0, its windows n_g,
//     "bytes_group_events": [],        the mean of l_ij = log(b_ij / y_ij) over them, and
//     "bytes_group_windows": [],       sum of (l_ij - mean)^2 over them (centred: no
//     "bytes_group_log_mean": [],      cancellation); windows of one law share (m_i, v(y)),
//     "bytes_group_log_ss": [],        so the factor costs O(BG) per gradient
//     "bytes_log_total": 0,          sum of log(b_ij) over windows with y > 0 (the Jacobian
//                                    from l to b: the density is that of the bytes themselves)
//     "m0_prior_mean": 8.0, "m0_prior_sd": 5.0, "tau_sd": 2.0, "sigma_w_sd": 1.0,
//     "sigma_e_sd": 1.5,
//     "grainsize": 0                 0: one pass over the entities; g > 0: chunks of g entities
//                                    summed by reduce_sum_static, on the threads of a build
//                                    with STAN_THREADS (run with num_threads=T)
//   }
// e.g.  ./hierarchical_negbinom sample num_warmup=1000 num_samples=2000 \
//           adapt delta=0.9 data file=data.json random seed=42 output file=out.csv

functions {
  // One draw from NegBinomial2(mean, phi) through its Gamma–Poisson mixture. Returned as a real
  // holding an integer, so that draws above Stan's 32-bit int range cannot abort sampling.
  // poisson_rng only accepts rates below 2^30; above 1e9 the Poisson is replaced by its Normal
  // approximation, whose quantiles differ from the Poisson's by less than 1e-4 relative there.
  real nb2_count_rng(real mean, real phi) {
    if (mean <= 0) {
      return 0;
    }
    real rate = phi / mean;
    if (is_inf(rate)) {
      return 0;  // mean is denormal: the count is 0 with probability 1 - O(1e-300)
    }
    real lambda = gamma_rng(phi, rate);
    if (lambda <= 0) {
      return 0;  // the Gamma draw underflowed: a rate below ~1e-300 gives no events
    }
    if (lambda < 1e9) {
      return poisson_rng(lambda);
    }
    return fmax(0, round(normal_rng(lambda, sqrt(lambda))));
  }

  // One draw from the zero-inflated NegBinomial2: a structural zero with probability pi.
  real zinb2_count_rng(real mean, real phi, real pi) {
    if (bernoulli_rng(pi)) {
      return 0;
    }
    return nb2_count_rng(mean, phi);
  }

  // The fused base path's entity terms (see the model block) of entities start..end:
  //   sum_i [(S_i + a - 1) log(theta_i) - alpha theta_i - (n_i phi + S_i) log1p(theta_i / phi)].
  // The partial sum of reduce_sum_static, which calls it once for all entities in a build
  // without STAN_THREADS, and per chunk of `grainsize` entities (on the chain's threads) in a
  // build with it.
  real fused_entity_terms(array[] real theta_slice, int start, int end,
                          data vector entity_total, data vector n_windows_real, real shape,
                          real alpha, real phi) {
    vector[end - start + 1] rate = to_vector(theta_slice);
    vector[end - start + 1] log_rate = log(rate);
    vector[end - start + 1] log1p_rate = log1p(rate / phi);
    vector[end - start + 1] total = entity_total[start:end];
    return dot_product(total, log_rate) + (shape - 1) * sum(log_rate) - alpha * sum(rate)
           - phi * dot_product(n_windows_real[start:end], log1p_rate)
           - dot_product(total, log1p_rate);
  }

  // The Gamma shapes a_i = mu_i * alpha of the entity rates, mu_i = mu * exp(x_i' beta).
  // Without covariates (X is J x 0) they are all mu * alpha (the product X * beta of a J x 0
  // matrix by an empty vector is not relied on).
  vector entity_shape(real mu, real alpha, matrix X, vector beta) {
    if (cols(X) == 0) {
      return rep_vector(mu * alpha, rows(X));
    }
    return mu * alpha * exp(X * beta);
  }

  // The offset and multiplier of log_g (see the parameters block): the mean and sd of
  // log Gamma(a_i + 1, 1) for the entities at `entities`. (Computed here into a vector: an
  // indexed expression in a declaration's offset was not evaluated safely.)
  vector log_g_offset(real mu, real alpha, matrix X, vector beta, array[] int entities) {
    vector[size(entities)] shape_g = entity_shape(mu, alpha, X, beta)[entities] + 1;
    vector[size(entities)] centre = digamma(shape_g);
    return centre;
  }

  vector log_g_multiplier(real mu, real alpha, matrix X, vector beta, array[] int entities) {
    vector[size(entities)] shape_g = entity_shape(mu, alpha, X, beta)[entities] + 1;
    vector[size(entities)] scale = sqrt(trigamma(shape_g));
    return scale;
  }

  // Zero-inflation: the offset (first half) and multiplier (second half) of log_theta_events
  // (see the parameters block): a Laplace approximation of the conditional posterior of
  // u_i = log theta_i (entity i with events) given the hyperparameters, its mode found by
  // six damped Newton steps from the Poisson guess log((a_i + S_i) / (alpha + exposure)),
  // its sd 1 / sqrt(curvature). In u, with m = E theta, the log density is
  //   a u - alpha e^u   (Gamma(a, alpha) prior and the Jacobian e^u)
  //   + sum over windows with y > 0 events of y u - (y + phi) log(m + phi)
  //   + sum over zero windows of log(pi + (1 - pi) (1 + m / phi)^-phi),
  // each kind of window taken at its mean exposure; the curvature keeps only the terms that
  // cannot be negative (a zero window's r phi^2 m / (m + phi)^2, r its posterior probability
  // of not being structural). O(entities with events) per gradient. Per entity: its index,
  // total S, windows with and without events and their mean exposures.
  vector event_rate_moments(real mu, real alpha, real phi, array[] real pi, matrix X,
                            vector beta, array[] int entities, vector total, vector nonzero,
                            vector zeros, vector exposure_nonzero, vector exposure_zero) {
    int n = size(entities);
    if (n == 0) {
      return rep_vector(0, 0);
    }
    real logit_pi = logit(pi[1]);
    vector[n] shape = entity_shape(mu, alpha, X, beta)[entities];
    vector[n] positive_weight = total + phi * nonzero;
    vector[n] u = log(shape + total) - log(alpha + exposure_nonzero .* nonzero
                                            + (1 - pi[1]) * exposure_zero .* zeros);
    vector[n] curvature;
    for (step in 1:7) {
      vector[n] theta = exp(u);
      vector[n] m_nonzero = exposure_nonzero .* theta;
      vector[n] m_zero = exposure_zero .* theta;
      vector[n] share_nonzero = m_nonzero ./ (m_nonzero + phi);
      vector[n] share_zero = m_zero ./ (m_zero + phi);
      vector[n] not_structural = inv_logit(-phi * log1p(m_zero / phi) - logit_pi);
      curvature = alpha * theta + phi * positive_weight .* share_nonzero ./ (m_nonzero + phi)
                  + phi * zeros .* not_structural .* share_zero .* (phi ./ (m_zero + phi));
      if (step < 7) {
        vector[n] slope = shape - alpha * theta + total - positive_weight .* share_nonzero
                          - phi * zeros .* not_structural .* share_zero;
        u += 3 * tanh(slope ./ curvature / 3);
      }
    }
    return append_row(u, inv_sqrt(curvature));
  }

  // Zero-inflation: the rates of the entities without events, from the auxiliary parameters
  // (see the parameters block): theta_i = exp(log_g_i - neg_log_u_i / a_i) / alpha, a_i = mu_i alpha.
  // Every rate (the others are theta_events) in entity order.
  vector assemble_rates(vector theta_events, array[] int event_entities, vector log_g,
                        vector neg_log_u, vector shape, real alpha, array[] int zero_entities) {
    vector[rows(shape)] rate;
    vector[size(zero_entities)] shape_zero = shape[zero_entities];
    rate[event_entities] = theta_events;
    rate[zero_entities] = exp(log_g - neg_log_u ./ shape_zero) / alpha;
    return rate;
  }

  // The number of positive elements of x, and their positions.
  int count_positive(vector x) {
    int n = 0;
    for (i in 1:rows(x)) {
      n += x[i] > 0;
    }
    return n;
  }

  array[] int positive_positions(vector x) {
    array[count_positive(x)] int positions;
    int next = 1;
    for (i in 1:rows(x)) {
      if (x[i] > 0) {
        positions[next] = i;
        next += 1;
      }
    }
    return positions;
  }

  // log NegBinomial2(y | mean, phi) for a real-valued count y (entity totals may exceed int).
  // Written without cancelling terms: lgamma(y + phi) - lgamma(phi) - lgamma(y + 1) is
  // -log(y) - lbeta(phi, y) (Stan's lbeta is accurate for large arguments), and
  // phi log(phi / (mean + phi)) is -phi log1p(mean / phi); y log(mean / phi) is 0 at y = 0,
  // even when the mean underflowed to 0 (0 log 0 = 0).
  real nb2_total_loglik(real y, real mean, real phi) {
    if (y == 0) {
      return -phi * log1p(mean / phi);
    }
    return -log(y) - lbeta(phi, y) - (phi + y) * log1p(mean / phi) + y * (log(mean) - log(phi));
  }

  // Bytes: the variance of l = log(b / y) in a window of y > 0 events (see the top of the file),
  // elementwise and for one window; the mean of l is then m_i - v / 2.
  vector bytes_log_variance(vector events, real sigma_w, real sigma_e) {
    return square(sigma_w) + log1p(expm1(square(sigma_e)) ./ events);
  }

  real bytes_log_variance(real events, real sigma_w, real sigma_e) {
    return square(sigma_w) + log1p(expm1(square(sigma_e)) / events);
  }

  // The bytes of a window of `events` events (a real holding a count): 0 without events.
  real window_bytes_rng(real events, real m, real sigma_w, real sigma_e) {
    if (events <= 0) {
      return 0;
    }
    real v = bytes_log_variance(events, sigma_w, sigma_e);
    return events * lognormal_rng(m - v / 2, sqrt(v));
  }
}

data {
  int<lower=1> J;
  int<lower=0> N;
  array[N] int<lower=1, upper=J> entity;
  array[N] int<lower=0> y;

  array[J] int<lower=1> n_windows;
  vector<lower=0>[J] entity_total;
  int<lower=0> K;
  array[K] int<lower=0> count_value;
  vector<lower=0>[K] count_freq;

  real<lower=0> mu_rate;
  real<lower=0> alpha_sd;
  real<lower=0> phi_sd;

  int<lower=0, upper=1> use_sufficient_stats;
  int<lower=0, upper=1> prior_only;
  int<lower=0, upper=1> non_centered;
  int<lower=0, upper=1> obs_predictions;
  int<lower=0, upper=1> entity_predictions;

  // Options (see the top of the file); all off gives the base model.
  int<lower=0, upper=1> has_exposure;
  vector<lower=0>[has_exposure ? N : 0] exposure;
  int<lower=0, upper=1> zero_inflation;
  int<lower=0> G;
  array[G] int<lower=1, upper=J> group_entity;
  vector<lower=0>[G] group_exposure;
  array[G] int<lower=1> group_windows;
  array[G] int<lower=0> group_zeros;
  vector<lower=0>[G] group_total;
  int<lower=0> P;
  matrix[J, P] X;
  real<lower=0> beta_sd;

  // Bytes (see the top of the file): the rows' bytes, and sufficient statistics per
  // (entity, count) group of windows with events.
  int<lower=0, upper=1> has_bytes;
  vector<lower=0>[has_bytes ? N : 0] bytes;
  int<lower=0> BG;
  array[BG] int<lower=1, upper=J> bytes_group_entity;
  array[BG] int<lower=1> bytes_group_events;
  array[BG] int<lower=1> bytes_group_windows;
  vector[BG] bytes_group_log_mean;
  vector<lower=0>[BG] bytes_group_log_ss;
  real bytes_log_total;
  real m0_prior_mean;
  real<lower=0> m0_prior_sd;
  real<lower=0> tau_sd;
  real<lower=0> sigma_w_sd;
  real<lower=0> sigma_e_sd;

  // Within-chain parallelism (the base model on the sufficient statistics only): 0 sums the
  // entity terms in one pass; g > 0 sums them with reduce_sum_static in fixed chunks of g
  // entities, run on the chain's threads when the program is built with STAN_THREADS (and
  // in one pass, the same as 0, when it is not).
  int<lower=0> grainsize;
}

transformed data {
  // Totals are accumulated as reals: their sums can exceed the 32-bit int range.
  vector[J] n_windows_real = to_vector(n_windows);
  real n_total = sum(n_windows_real);
  vector[K] count_value_real = to_vector(count_value);
  real grand_total = sum(entity_total);
  // The positive count values and their frequencies (zero windows add nothing to the
  // binomial-coefficient part of the likelihood), and sum_n log(y_n) over positive windows:
  // the data-only constant, kept so that both paths give the same normalised log density.
  int K_positive = 0;
  for (k in 1:K) {
    K_positive += count_value[k] > 0;
  }
  vector[K_positive] positive_value;
  vector[K_positive] positive_freq;
  {
    int next = 1;
    for (k in 1:K) {
      if (count_value[k] > 0) {
        positive_value[next] = count_value[k];
        positive_freq[next] = count_freq[k];
        next += 1;
      }
    }
  }
  real log_positive_value_sum = dot_product(positive_freq, log(positive_value));
  // Entities (and groups) with a positive total: S log(rate) is summed over these only, so
  // that one without events whose rate underflows to 0 (theta_raw / alpha with a denormal
  // theta_raw, or a tiny exposure) adds 0 log 0 = 0, its zero windows' exact log density, with
  // gradient 0 (0 * log(0) is NaN, and lmultiply's gradient S / rate is 0 / 0 there).
  array[count_positive(entity_total)] int positive_entities = positive_positions(entity_total);

  // Grouped sufficient statistics (exposure or zero-inflation): windows sharing an entity and
  // an exposure value have the same mean E_g * theta_i, so the likelihood needs per group only
  // n_g, z_g (zero windows) and S_g, plus the global histogram: O(G + K) per gradient.
  int grouped = G > 0;
  // Zero-inflation (centred): the rates of entities without events come from auxiliary
  // parameters (see the parameters block); J_zero of them, at zero_entities.
  int aux_rates = zero_inflation && !non_centered;
  // The base model on the sufficient statistics (centred, no option): the Gamma prior and the
  // likelihood share one log(theta) per entity (see the model block).
  int fused_base = use_sufficient_stats && !grouped && !non_centered && !aux_rates && P == 0
                   && !prior_only;
  int J_zero = 0;
  for (i in 1:J) {
    J_zero += aux_rates && entity_total[i] == 0;
  }
  array[J_zero] int zero_entities;
  {
    int next = 1;
    for (i in 1:J) {
      if (aux_rates && entity_total[i] == 0) {
        zero_entities[next] = i;
        next += 1;
      }
    }
  }
  vector[G] group_windows_real = to_vector(group_windows);
  vector[G] group_zeros_real = to_vector(group_zeros);
  vector[G] group_nonzero = group_windows_real - group_zeros_real;
  real total_nonzero = sum(group_nonzero);
  vector[G] group_log_exposure = log(group_exposure);
  array[count_positive(group_total)] int positive_groups = positive_positions(group_total);
  // Zero-inflation (centred): per entity with events, what the coordinates of its rate are
  // set from (event_rate_moments): its total, its windows with and without events and their
  // mean exposures (from the groups when given, else from the rows: the same numbers).
  int J_events = aux_rates ? J - J_zero : 0;
  array[J_events] int event_entities;
  vector[J_events] event_total;
  vector[J_events] event_nonzero;
  vector[J_events] event_zeros;
  vector[J_events] event_exposure_nonzero;
  vector[J_events] event_exposure_zero;
  if (aux_rates) {
    vector[J] nonzero = rep_vector(0, J);
    vector[J] zeros = rep_vector(0, J);
    vector[J] exposure_nonzero = rep_vector(0, J);
    vector[J] exposure_zero = rep_vector(0, J);
    if (grouped) {
      for (g in 1:G) {
        nonzero[group_entity[g]] += group_nonzero[g];
        zeros[group_entity[g]] += group_zeros_real[g];
        exposure_nonzero[group_entity[g]] += group_nonzero[g] * group_exposure[g];
        exposure_zero[group_entity[g]] += group_zeros_real[g] * group_exposure[g];
      }
    } else {
      for (n in 1:N) {
        real e = has_exposure ? exposure[n] : 1;
        if (y[n] > 0) {
          nonzero[entity[n]] += 1;
          exposure_nonzero[entity[n]] += e;
        } else {
          zeros[entity[n]] += 1;
          exposure_zero[entity[n]] += e;
        }
      }
    }
    event_entities = positive_entities;
    event_total = entity_total[event_entities];
    event_nonzero = nonzero[event_entities];
    event_zeros = zeros[event_entities];
    event_exposure_nonzero = exposure_nonzero[event_entities] ./ event_nonzero;
    event_exposure_zero = exposure_zero[event_entities] ./ fmax(event_zeros, 1);
  }

  // Tolerances are relative: sums of doubles beyond 2^53 are not exact.
  if (abs(sum(count_freq) - n_total) > fmax(0.5, 1e-12 * n_total)) {
    reject("count_freq sums to ", sum(count_freq), " but n_windows sums to ", n_total,
           ": the count histogram and the per-entity windows describe different data");
  }
  if (abs(dot_product(count_freq, count_value_real) - sum(entity_total))
      > fmax(0.5, 1e-12 * sum(entity_total))) {
    reject("sum of count_value * count_freq is ", dot_product(count_freq, count_value_real),
           " but entity_total sums to ", sum(entity_total),
           ": the count histogram and the per-entity totals describe different data");
  }
  if (!use_sufficient_stats && N != n_total) {
    reject("the per-observation likelihood needs every observation: N = ", N,
           " but n_windows sums to ", n_total);
  }
  if (obs_predictions && N != n_total) {
    reject("obs_predictions = 1 needs every observation: N = ", N,
           " but n_windows sums to ", n_total);
  }
  if ((has_exposure || zero_inflation) && use_sufficient_stats && !grouped) {
    reject("exposure and zero-inflation need the grouped statistics (G > 0) ",
           "on the sufficient path; G = 0");
  }
  if (grouped) {
    if (abs(sum(group_windows_real) - n_total) > 0.5) {
      reject("group_windows sums to ", sum(group_windows_real), " but n_windows sums to ",
             n_total, ": the groups and the entities describe different windows");
    }
    if (abs(sum(group_total) - grand_total) > fmax(0.5, 1e-12 * grand_total)) {
      reject("group_total sums to ", sum(group_total), " but entity_total sums to ",
             grand_total, ": the groups and the entities describe different windows");
    }
    if (min(group_nonzero) < 0) {
      reject("a group has more zero windows (group_zeros) than windows (group_windows)");
    }
    if (min(group_exposure) <= 0) {
      reject("group_exposure must be positive");
    }
  }
  if (has_exposure && N > 0 && min(exposure) <= 0) {
    reject("exposure must be positive");
  }
  real half_log_two_pi = 0.918938533204672741780329736406;  // (the parameter pi hides pi())
  vector[BG] bytes_group_windows_real = to_vector(bytes_group_windows);
  vector[BG] bytes_group_events_real = to_vector(bytes_group_events);
  if (!has_bytes && BG > 0) {
    reject("BG = ", BG, " bytes groups given with has_bytes = 0");
  }
  if (has_bytes) {
    array[J] int entity_bytes_windows = rep_array(0, J);
    for (g in 1:BG) {
      entity_bytes_windows[bytes_group_entity[g]] += bytes_group_windows[g];
    }
    for (i in 1:J) {
      if (entity_bytes_windows[i] > n_windows[i]) {
        reject("the bytes groups of entity ", i, " hold ", entity_bytes_windows[i],
               " windows with events, more than its n_windows = ", n_windows[i]);
      }
    }
    int rows_with_events = 0;
    for (n in 1:N) {
      if ((y[n] == 0) != (bytes[n] == 0)) {
        reject("row ", n, ": ", y[n], " events with ", bytes[n], " bytes; a window carries ",
               "0 bytes exactly when it has no events");
      }
      rows_with_events += y[n] > 0;
    }
    if (N > 0 && N == n_total && rows_with_events != sum(bytes_group_windows)) {
      reject("the rows have ", rows_with_events, " windows with events but the bytes groups ",
             "hold ", sum(bytes_group_windows), ": they describe different windows");
    }
  }
}

parameters {
  real<lower=0> mu;
  real<lower=0> alpha;
  real<lower=0> phi;
  // Exactly one of these two has length J, chosen by `non_centered`. Both give the same model:
  // theta = theta_raw / alpha with theta_raw ~ Gamma(mu * alpha, 1) is theta ~ Gamma(mu * alpha,
  // alpha). (The often-quoted theta = mu * Gamma(alpha, alpha) is a different model:
  // Var(theta) = mu^2 / alpha.)
  // (theta is not a transformed parameter: that would write the J rates twice per draw.)
  vector<lower=0>[non_centered || aux_rates ? 0 : J] theta;  // the entity rates, sampled directly
  vector<lower=0>[non_centered ? J : 0] theta_raw;  // alpha * theta; theta is then theta_from_raw
  vector[P] beta;                                    // log rate ratio per covariate unit (scaled)
  array[zero_inflation] real<lower=0, upper=1> pi;   // share of structural zeros
  // Zero-inflation (centred): the rate of an entity without events is the exact Gamma(a_i, alpha)
  // rate
  //   theta_i = g_i * u_i^(1 / a_i) / alpha,  g_i ~ Gamma(a_i + 1, 1),  u_i ~ Uniform(0, 1),
  // a_i = mu_i * alpha (Marsaglia & Tsang 2000: G(a + 1) U^(1/a) is Gamma(a, 1)), sampled as
  // log_g_i = log(g_i) and neg_log_u_i = -log(u_i) ~ Exponential(1). Why: once pi is large all
  // of such an entity's zeros can be structural, the likelihood is flat in theta_i and its
  // posterior is its prior; on the log scale a Gamma(a) with a << 1 has an exponential left
  // tail of scale 1 / a and a wall on the right, and with a >> 1 a width of 1 / sqrt(a): a
  // funnel in (mu, alpha, beta, theta_i) where the centred sampler diverged in 65% of SBC
  // fits. In (log_g, neg_log_u) the prior is Exponential(1) in neg_log_u at every a, and
  // log_g, standardised below by the mean and sd of log Gamma(a + 1) (digamma, trigamma;
  // shape >= 1: no wall), has mean 0 and sd 1: no funnel.
  // The rate of an entity with events is sampled as log_theta_events_i = log theta_i (its
  // density is theta_i's Gamma(a_i, alpha) density times the Jacobian theta_i) with an offset
  // and a multiplier that follow the hyperparameters: the mode and sd of a Laplace
  // approximation of its conditional posterior given mu, alpha, phi, beta and pi
  // (event_rate_moments), so that the sampler sees each such rate standardised, about
  // N(0, 1), wherever the hyperparameters are. Why: with pi large a zero window may be
  // structural, and an entity with few events (or with small phi, whose Negative Binomial
  // likelihood decays only as theta^-phi per window) has a rate whose posterior is nearly its
  // prior times theta^S: centred on log theta it sits against the prior's wall at
  // theta ~ 1 / alpha and moves with alpha, mu, phi and pi, and HMC diverged there (53% of
  // the all-options SBC fits after the pair above; 77 of 102 with pi > 0.5). A
  // hyperparameter-dependent offset and multiplier are an exact change of variables (the
  // map from (hyperparameters, log_theta_events) to (hyperparameters, theta) is triangular;
  // Stan adds log(multiplier) as its Jacobian).
  // Both are the same model: the reported theta_i has the same joint density with the data
  // and the hyperparameters (the auxiliary pair is integrated out by the sampler); only the
  // sampler's coordinates change. The rates are output as theta_from_raw.
  // (head and tail: a slice [1:0] of the empty vector is an indexing error.)
  vector<offset=head(event_rate_moments(mu, alpha, phi, pi, X, beta, event_entities,
                                        event_total, event_nonzero, event_zeros,
                                        event_exposure_nonzero, event_exposure_zero), J_events),
         multiplier=tail(event_rate_moments(mu, alpha, phi, pi, X, beta, event_entities,
                                            event_total, event_nonzero, event_zeros,
                                            event_exposure_nonzero, event_exposure_zero),
                         J_events)>[J_events] log_theta_events;
  vector<offset=log_g_offset(mu, alpha, X, beta, zero_entities),
         multiplier=log_g_multiplier(mu, alpha, X, beta, zero_entities)>[J_zero] log_g;
  vector<lower=0>[J_zero] neg_log_u;
  // Bytes (has_bytes = 1): population and entity log mean bytes per event and their spread,
  // the window-level and the event-level log spread of sizes.
  array[has_bytes] real m0;
  array[has_bytes] real<lower=0> tau;
  array[has_bytes] real<lower=0> sigma_w;
  array[has_bytes] real<lower=0> sigma_e;
  vector[has_bytes ? J : 0] m;
}

model {
  // The entity rates under either parameterisation (unused on the fused base path below).
  vector[fused_base ? 0 : J] rate;
  if (non_centered) {
    rate = theta_raw / alpha;
  } else if (aux_rates) {
    rate = assemble_rates(exp(log_theta_events), positive_entities, log_g, neg_log_u,
                          entity_shape(mu, alpha, X, beta), alpha, zero_entities);
  } else if (!fused_base) {
    rate = theta;
  }

  // Hyperpriors. normal_lpdf + log(2) is the half-normal density on the positive half-line.
  target += exponential_lpdf(mu | mu_rate);
  target += normal_lpdf(alpha | 0, alpha_sd) + log2();
  target += normal_lpdf(phi | 0, phi_sd) + log2();

  if (P > 0) {
    target += normal_lpdf(beta | 0, beta_sd);
  }
  if (zero_inflation) {
    target += beta_lpdf(pi[1] | 1, 1);  // uniform: adds 0, kept to state the prior
  }

  // Entity rates, partially pooled toward mu (toward mu_i = mu * exp(x_i' beta) with covariates).
  if (fused_base) {
    // The base model on the sufficient statistics, the Gamma(a, alpha) prior (a = mu alpha)
    // and the likelihood of the sufficient path below in one expression:
    //   sum_i [a log(alpha) - lgamma(a) + (a - 1) log(theta_i) - alpha theta_i]
    //   + sum_i [S_i log(theta_i) - (n_i phi + S_i) log1p(theta_i / phi)] + the histogram terms,
    // so that log(theta_i) is computed once per entity (gamma_lpdf and the likelihood each took
    // one): measured at J = 100,000 with CmdStan 2.35, 23% less time per gradient (and 6% more
    // with (a - 1) multiplying sum(log theta) instead of each S_i + a - 1). The same density
    // term by term. (A rate that underflows to theta_i = 0, log theta_i < -745, has no finite
    // density on either path: NaN here, +inf or NaN in gamma_lpdf; the sampler rejects it.)
    // The entity terms are summed by fused_entity_terms, in one pass (grainsize 0) or in
    // chunks that threads can share (grainsize > 0; same sum, other rounding).
    real shape = mu * alpha;
    real entity_terms;
    if (grainsize == 0) {
      entity_terms = fused_entity_terms(to_array_1d(theta), 1, J, entity_total, n_windows_real,
                                        shape, alpha, phi);
    } else {
      entity_terms = reduce_sum_static(fused_entity_terms, to_array_1d(theta), grainsize,
                                       entity_total, n_windows_real, shape, alpha, phi);
    }
    target += J * (shape * log(alpha) - lgamma(shape)) + entity_terms;
    target += -log_positive_value_sum - dot_product(positive_freq, lbeta(phi, positive_value))
              - grand_total * log(phi);
  } else if (aux_rates) {
    // theta_events ~ Gamma(a_i, alpha); log_g ~ log Gamma(a_i + 1, 1) (the density of g times
    // the Jacobian g); neg_log_u ~ Exponential(1).
    vector[J] shape = entity_shape(mu, alpha, X, beta);
    vector[J_zero] shape_g = shape[zero_entities] + 1;
    target += gamma_lpdf(exp(log_theta_events) | shape[positive_entities], alpha)
              + sum(log_theta_events);
    target += dot_product(shape_g, log_g) - sum(exp(log_g)) - sum(lgamma(shape_g));
    target += exponential_lpdf(neg_log_u | 1);
  } else if (P == 0) {
    if (non_centered) {
      target += gamma_lpdf(theta_raw | mu * alpha, 1);
    } else {
      target += gamma_lpdf(theta | mu * alpha, alpha);
    }
  } else {
    vector[J] shape = mu * alpha * exp(X * beta);
    if (non_centered) {
      target += gamma_lpdf(theta_raw | shape, 1);
    } else {
      target += gamma_lpdf(theta | shape, alpha);
    }
  }

  if (!prior_only && !fused_base) {
    if (use_sufficient_stats && grouped) {
      // The same regrouping over groups g = (entity, exposure) with mean m_g = E_g theta_i:
      // a window with count y > 0 adds -log(y) - lbeta(phi, y) (from the histogram)
      // + log NB2(0 | m_g, phi) + y [log(m_g) - log(phi) - log1p(m_g / phi)], where
      // log NB2(0 | m, phi) = -phi log1p(m / phi); a zero window adds log NB2(0 | m_g, phi).
      // With zero-inflation a positive window adds log1m(pi) more, and a zero window adds
      // log(pi + (1 - pi) NB2(0 | m_g, phi)) instead.
      vector[G] group_mean = group_exposure .* rate[group_entity];
      vector[G] log1p_mean = log1p(group_mean / phi);
      vector[G] log_p0 = -phi * log1p_mean;
      target += -log_positive_value_sum - dot_product(positive_freq, lbeta(phi, positive_value))
                + dot_product(group_total[positive_groups], log(group_mean[positive_groups]))
                - dot_product(group_total, log1p_mean) - grand_total * log(phi);
      if (zero_inflation) {
        real log_pi = log(pi[1]);
        real log1m_pi = log1m(pi[1]);
        target += dot_product(group_nonzero, log_p0) + total_nonzero * log1m_pi;
        for (g in 1:G) {
          if (group_zeros[g] > 0) {
            target += group_zeros_real[g] * log_sum_exp(log_pi, log1m_pi + log_p0[g]);
          }
        }
      } else {
        target += dot_product(group_windows_real, log_p0);
      }
    } else if (use_sufficient_stats) {
      // sum over all windows of log NB2(y | theta_i, phi), regrouped by count value and entity:
      //   sum_k m_k [lgamma(k + phi) - lgamma(phi) - lgamma(k + 1)]
      //   + sum_i [ n_i phi log(phi / (theta_i + phi)) + S_i log(theta_i / (theta_i + phi)) ]
      // written without terms that cancel at large phi * N (N phi log(phi) against
      // sum_i n_i phi log(theta_i + phi)):
      //   lgamma(k + phi) - lgamma(phi) - lgamma(k + 1) = -log(k) - lbeta(phi, k)   (k > 0; 0 at k = 0)
      //   log(phi / (theta + phi)) = -log1p(theta / phi)
      //   log(theta / (theta + phi)) = log(theta) - log(phi) - log1p(theta / phi)
      // (rate = theta). S_i log(theta_i) is summed over entities with S_i > 0 only (0 log 0 =
      // 0, as lmultiply; see positive_entities).
      target += -log_positive_value_sum - dot_product(positive_freq, lbeta(phi, positive_value))
                - dot_product(n_windows_real * phi + entity_total, log1p(rate / phi))
                + dot_product(entity_total[positive_entities], log(rate[positive_entities]))
                - grand_total * log(phi);
    } else if (!has_exposure && !zero_inflation) {
      // Reference path: one term per observation.
      target += neg_binomial_2_lpmf(y | rate[entity], phi);
    } else {
      // Reference path with the options: one term per observation.
      vector[N] row_mean = has_exposure ? exposure .* rate[entity] : rate[entity];
      if (!zero_inflation) {
        target += neg_binomial_2_lpmf(y | row_mean, phi);
      } else {
        for (n in 1:N) {
          if (y[n] == 0) {
            target += log_sum_exp(log(pi[1]),
                                  log1m(pi[1]) + neg_binomial_2_lpmf(0 | row_mean[n], phi));
          } else {
            target += log1m(pi[1]) + neg_binomial_2_lpmf(y[n] | row_mean[n], phi);
          }
        }
      }
    }
  }

  // Bytes: a separate factor (no parameter in common with the counts above).
  if (has_bytes) {
    target += normal_lpdf(m0[1] | m0_prior_mean, m0_prior_sd);
    target += normal_lpdf(tau[1] | 0, tau_sd) + log2();
    target += normal_lpdf(sigma_w[1] | 0, sigma_w_sd) + log2();
    target += normal_lpdf(sigma_e[1] | 0, sigma_e_sd) + log2();
    target += normal_lpdf(m | m0[1], tau[1]);
    if (!prior_only) {
      if (use_sufficient_stats) {
        // sum over windows with events of log LogNormal(b | log(y) + m_i - v / 2, sqrt(v))
        //   = sum normal_lpdf(l | m_i - v / 2, sqrt(v)) - sum log(b),   l = log(b / y),
        // regrouped by (entity, count) group g, whose windows share mean c_g and variance v_g:
        // sum_j (l_gj - c_g)^2 = SS_g + n_g (mean_g - c_g)^2. O(BG) per gradient.
        vector[BG] v = bytes_log_variance(bytes_group_events_real, sigma_w[1], sigma_e[1]);
        vector[BG] centre = m[bytes_group_entity] - v / 2;
        target += -sum(bytes_group_windows_real) * half_log_two_pi
                  - 0.5 * dot_product(bytes_group_windows_real, log(v))
                  - 0.5 * sum((bytes_group_log_ss
                               + bytes_group_windows_real .* square(bytes_group_log_mean - centre))
                              ./ v)
                  - bytes_log_total;
      } else {
        // Reference path: one lognormal term per window with events.
        for (n in 1:N) {
          if (y[n] > 0) {
            real v = bytes_log_variance(y[n], sigma_w[1], sigma_e[1]);
            target += lognormal_lpdf(bytes[n] | log(y[n]) + m[entity[n]] - v / 2, sqrt(v));
          }
        }
      }
    }
  }
}

generated quantities {
  // Under prior_only = 1 the quantities below come from one exact ancestral draw from the prior
  // (mu, alpha, phi, then beta and pi when present, then theta), reported as *_prior; run it
  // with the fixed_param sampler. Otherwise they come from the current posterior draw.
  array[prior_only] real mu_prior;
  array[prior_only] real alpha_prior;
  array[prior_only] real phi_prior;
  vector[prior_only ? P : 0] beta_prior;
  array[prior_only * zero_inflation] real pi_prior;
  vector[prior_only ? J : 0] theta_prior;

  // The entity rates when non-centred or, with zero-inflation, sampled through theta_events,
  // log_g and e (empty otherwise: theta holds them).
  vector[non_centered || aux_rates ? J : 0] theta_from_raw;

  // The joint log prior density of the hyperparameters at this draw (as brms's lprior): mu,
  // alpha, phi, and beta, pi, m0, tau, sigma_w, sigma_e when in the model, fully normalised like the
  // target. The population distributions of theta and m are not in it (their parameters are
  // the hyperparameters). Power-scaling sensitivity (ArviZ's psens) scales this density.
  real lprior = exponential_lpdf(mu | mu_rate) + normal_lpdf(alpha | 0, alpha_sd)
                + normal_lpdf(phi | 0, phi_sd) + 2 * log2();
  if (P > 0) {
    lprior += normal_lpdf(beta | 0, beta_sd);
  }
  if (zero_inflation) {
    lprior += beta_lpdf(pi[1] | 1, 1);
  }
  if (has_bytes) {
    lprior += normal_lpdf(m0[1] | m0_prior_mean, m0_prior_sd) + normal_lpdf(tau[1] | 0, tau_sd)
              + normal_lpdf(sigma_w[1] | 0, sigma_w_sd) + normal_lpdf(sigma_e[1] | 0, sigma_e_sd)
              + 3 * log2();
  }

  // An unseen entity with covariates at their mean (x = 0 after centring): its rate per unit
  // exposure, and a count in one window of exposure 1. (At other covariate values ratepool
  // draws them in Python from mu, alpha, beta, phi and pi.)
  real theta_new;
  real y_new;

  // Per observation (obs_predictions = 1): a replicated count and the pointwise log likelihood.
  array[obs_predictions ? N : 0] real y_rep;
  vector[obs_predictions ? N : 0] log_lik;

  // Per entity (entity_predictions = 1), all O(J + G) per draw:
  //   y_pred          a count in one new window of exposure 1;
  //   y_rep_total     replicated total over the entity's n_i windows, NB2(n_i theta, n_i phi)
  //                   (with groups: a sum over its groups of NB2(m E_g theta, m phi), where m
  //                   is n_g, or with zero-inflation the Binomial(n_g, 1 - pi) windows that are
  //                   not structural zeros);
  //   y_rep_zeros     replicated number of zero windows, Binomial(n_i, P(y = 0)) (per group
  //                   with groups);
  //                   with obs_predictions = 1 both are those of ONE replicate, the rows' y_rep
  //                   (its entity's sum and number of zeros: the same laws, joined, O(N));
  //                   without the rows they are drawn from their own laws in O(J + G), each
  //                   exact but independent of the other (a joint draw of the total and the
  //                   zeros needs every window, O(N) per draw, which the sufficient path avoids):
  //                   check totals and zeros separately then, not jointly;
  //   log_lik_entity  log NB2(S_i | n_i theta_i, n_i phi): the log density of the entity's TOTAL,
  //                   for LOO over "predict an entity's total". It is not the joint density of
  //                   the entity's windows (S_i is sufficient for theta_i but not for phi); with
  //                   the rows, summing log_lik over the entity's rows gives that. With exposure
  //                   or zero-inflation the total's law has no closed form, and log_lik_entity
  //                   is empty (use the rows' sum).
  array[entity_predictions ? J : 0] real y_pred;
  array[entity_predictions ? J : 0] real y_rep_total;
  array[entity_predictions ? J : 0] int y_rep_zeros;
  vector[entity_predictions && !grouped ? J : 0] log_lik_entity;

  // Bytes (has_bytes = 1): prior draws under prior_only; the log mean bytes per event of an
  // unseen entity; per row (obs_predictions) the bytes of the replicated window y_rep (0 when
  // it has no events; drawn from the factor's law given y_rep) and the log density of the
  // observed bytes (0 for a window without events); per entity (entity_predictions) the bytes
  // of the new window y_pred.
  array[has_bytes * prior_only] real m0_prior;
  array[has_bytes * prior_only] real tau_prior;
  array[has_bytes * prior_only] real sigma_w_prior;
  array[has_bytes * prior_only] real sigma_e_prior;
  vector[has_bytes * prior_only * J] m_prior;
  array[has_bytes] real m_new;
  array[has_bytes && obs_predictions ? N : 0] real bytes_rep;
  vector[has_bytes && obs_predictions ? N : 0] bytes_log_lik;
  array[has_bytes && entity_predictions ? J : 0] real bytes_pred;

  {
    real mu_g = mu;
    real alpha_g = alpha;
    real phi_g = phi;
    vector[P] beta_g = beta;
    real pi_g = zero_inflation ? pi[1] : 0;
    vector[J] theta_g;
    if (aux_rates) {
      theta_g = assemble_rates(exp(log_theta_events), positive_entities, log_g, neg_log_u,
                               entity_shape(mu, alpha, X, beta), alpha, zero_entities);
    } else {
      theta_g = non_centered ? theta_raw / alpha : theta;
    }
    if (non_centered || aux_rates) {
      theta_from_raw = theta_g;
    }
    if (prior_only) {
      // Half-normal draws as |Normal|.
      mu_g = exponential_rng(mu_rate);
      alpha_g = abs(normal_rng(0, alpha_sd));
      phi_g = abs(normal_rng(0, phi_sd));
      for (p in 1:P) {
        beta_g[p] = normal_rng(0, beta_sd);
      }
      if (zero_inflation) {
        pi_g = beta_rng(1, 1);
        pi_prior[1] = pi_g;
      }
      if (P == 0) {
        for (i in 1:J) {
          theta_g[i] = gamma_rng(mu_g * alpha_g, alpha_g);
        }
      } else {
        vector[J] shape = mu_g * alpha_g * exp(X * beta_g);
        for (i in 1:J) {
          theta_g[i] = gamma_rng(shape[i], alpha_g);
        }
      }
      mu_prior[1] = mu_g;
      alpha_prior[1] = alpha_g;
      phi_prior[1] = phi_g;
      beta_prior = beta_g;
      theta_prior = theta_g;
    }

    theta_new = gamma_rng(mu_g * alpha_g, alpha_g);
    y_new = zero_inflation ? zinb2_count_rng(theta_new, phi_g, pi_g)
                           : nb2_count_rng(theta_new, phi_g);

    if (obs_predictions) {
      for (n in 1:N) {
        real mean_n = has_exposure ? exposure[n] * theta_g[entity[n]] : theta_g[entity[n]];
        if (!zero_inflation) {
          y_rep[n] = nb2_count_rng(mean_n, phi_g);
          if (!prior_only) {  // the likelihood of the data under a prior draw is not needed
            log_lik[n] = neg_binomial_2_lpmf(y[n] | mean_n, phi_g);
          }
        } else {
          y_rep[n] = zinb2_count_rng(mean_n, phi_g, pi_g);
          if (!prior_only) {
            log_lik[n] = y[n] == 0
                         ? log_sum_exp(log(pi_g), log1m(pi_g)
                                                  + neg_binomial_2_lpmf(0 | mean_n, phi_g))
                         : log1m(pi_g) + neg_binomial_2_lpmf(y[n] | mean_n, phi_g);
          }
        }
      }
    }
    if (entity_predictions && obs_predictions) {
      // The total and the zeros of the replicate y_rep (see above).
      for (i in 1:J) {
        y_pred[i] = zero_inflation ? zinb2_count_rng(theta_g[i], phi_g, pi_g)
                                   : nb2_count_rng(theta_g[i], phi_g);
        y_rep_total[i] = 0;
        y_rep_zeros[i] = 0;
      }
      for (n in 1:N) {
        y_rep_total[entity[n]] += y_rep[n];
        y_rep_zeros[entity[n]] += y_rep[n] == 0;
      }
      if (!grouped && !prior_only) {
        for (i in 1:J) {
          log_lik_entity[i] = nb2_total_loglik(entity_total[i], n_windows[i] * theta_g[i],
                                               n_windows[i] * phi_g);
        }
      }
    } else if (entity_predictions && !grouped) {
      for (i in 1:J) {
        y_pred[i] = nb2_count_rng(theta_g[i], phi_g);
        y_rep_total[i] = nb2_count_rng(n_windows[i] * theta_g[i], n_windows[i] * phi_g);
        y_rep_zeros[i] = binomial_rng(n_windows[i], exp(-phi_g * log1p(theta_g[i] / phi_g)));
        if (!prior_only) {
          log_lik_entity[i] = nb2_total_loglik(entity_total[i], n_windows[i] * theta_g[i],
                                               n_windows[i] * phi_g);
        }
      }
    } else if (entity_predictions) {
      for (i in 1:J) {
        y_pred[i] = zinb2_count_rng(theta_g[i], phi_g, pi_g);
        y_rep_total[i] = 0;
        y_rep_zeros[i] = 0;
      }
      for (g in 1:G) {
        int e = group_entity[g];
        real mean_g = group_exposure[g] * theta_g[e];
        int kept = zero_inflation ? binomial_rng(group_windows[g], 1 - pi_g) : group_windows[g];
        if (kept > 0) {
          y_rep_total[e] += nb2_count_rng(kept * mean_g, kept * phi_g);
        }
        real p_zero = pi_g + (1 - pi_g) * exp(-phi_g * log1p(mean_g / phi_g));
        y_rep_zeros[e] += binomial_rng(group_windows[g], p_zero);
      }
    }

    // Bytes, drawn last so that every draw above is the same with or without them.
    if (has_bytes) {
      real m0_g = m0[1];
      real tau_g = tau[1];
      real sigma_w_g = sigma_w[1];
      real sigma_e_g = sigma_e[1];
      vector[J] m_g = m;
      if (prior_only) {
        m0_g = normal_rng(m0_prior_mean, m0_prior_sd);
        tau_g = abs(normal_rng(0, tau_sd));
        sigma_w_g = abs(normal_rng(0, sigma_w_sd));
        sigma_e_g = abs(normal_rng(0, sigma_e_sd));
        for (i in 1:J) {
          m_g[i] = normal_rng(m0_g, tau_g);
        }
        m0_prior[1] = m0_g;
        tau_prior[1] = tau_g;
        sigma_w_prior[1] = sigma_w_g;
        sigma_e_prior[1] = sigma_e_g;
        m_prior = m_g;
      }
      m_new[1] = normal_rng(m0_g, tau_g);
      if (obs_predictions) {
        for (n in 1:N) {
          bytes_rep[n] = window_bytes_rng(y_rep[n], m_g[entity[n]], sigma_w_g, sigma_e_g);
          if (!prior_only) {
            if (y[n] > 0) {
              real v = bytes_log_variance(y[n], sigma_w_g, sigma_e_g);
              bytes_log_lik[n] = lognormal_lpdf(bytes[n] | log(y[n]) + m_g[entity[n]] - v / 2,
                                                sqrt(v));
            } else {
              bytes_log_lik[n] = 0;
            }
          }
        }
      }
      if (entity_predictions) {
        for (i in 1:J) {
          bytes_pred[i] = window_bytes_rng(y_pred[i], m_g[i], sigma_w_g, sigma_e_g);
        }
      }
    }
  }
}
