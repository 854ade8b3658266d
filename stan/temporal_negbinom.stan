// ratepool, temporal model: the hierarchical Gamma–Negative-Binomial model of
// hierarchical_negbinom.stan with entity rates that drift from window to window as a
// stationary AR(1) on the log scale around the entity's median rate theta_i.
//
//   mu      ~ Exponential(mu_rate)                  population mean of the entity levels
//   alpha   ~ HalfNormal(alpha_sd)                  E[theta_i] = mu, Var(theta_i) = mu / alpha
//   phi     ~ HalfNormal(phi_sd)                    overdispersion of a window given its rate
//   theta_i ~ Gamma(shape = mu * alpha, rate = alpha)      i = 1..J, median rate of entity i
//   s       ~ HalfNormal(s_sd)                      stationary sd of the log-rate deviation
//   (rho + 1) / 2 ~ Beta(2, 2)                      autocorrelation of the log rate per step:
//                                                   density 3/4 (1 - rho^2) on (-1, 1), zero at
//                                                   +-1 (the marginal of an LKJ(2) correlation)
//   sigma   = s * sqrt(1 - rho^2)                   innovation sd per step (generated quantity)
//   eta_i1  = s * z_i1                              (the first observed window: stationary)
//   eta_ij  = rho^g * eta_i,j-1 + s * sqrt(1 - rho^(2 g)) * z_ij
//             g = steps from window j-1 to window j (g = 1: rho * eta + sigma * z): the exact
//             AR(1) transition over a gap of g steps, so unobserved windows need no states
//   z_ij    ~ Normal(0, 1)                          non-centred latent states
//   lambda_ij = theta_i * exp(eta_ij)               theta_i is the entity's median rate (the
//                                                   rate at eta = 0, exp of the mean log rate);
//                                                   its long-run mean rate is theta_i exp(s^2/2)
//   y_ij    ~ NegBinomial2(E_ij * lambda_ij, phi)   E_ij: exposure (1 without)
//
// The prior is put on the stationary sd s, the scale the counts see, and rho's prior vanishes
// at +-1: under rho ~ Uniform(-1, 1) and a prior on sigma the stationary variance had an
// infinite prior mean, and a mean-corrected level theta_i exp(-s^2 / 2) made theta_i and mu
// climb with s along a curved ridge where the sampler diverged.
//
// The rows are ordered by entity, then by window; one pass over them gives every eta: a
// gradient costs O(N). The target is the exact, fully normalised joint log density of
// (mu, alpha, phi, theta, rho, s, z) and the counts (every `target +=` keeps its
// constants, the half-normals their factor 2, the scaled Beta its -log 2).
//
// Data JSON (`ratepool.temporal.temporal_stan_data` writes it):
//   {
//     "J": 2, "N": 5,
//     "entity": [1, 1, 1, 2, 2],     1-based entity of each row; rows grouped by entity
//     "gap": [0, 1, 3, 0, 1],        0 on an entity's first row, else steps since its previous
//                                    row (>= 1)
//     "y": [0, 4, 2, 7, 1],          counts
//     "exposure": [1, 1, 1, 1, 1],   E_ij > 0
//     "mu_rate": 0.1, "alpha_sd": 2.0, "phi_sd": 2.0, "s_sd": 0.5,
//     "prior_only": 0,               1: no likelihood; generated quantities from exact
//                                    ancestral prior draws (run with the fixed_param sampler)
//     "obs_predictions": 1,          1: y_rep and log_lik per row
//     "path_output": 1,              1: the latent rate path lambda per row
//     "entity_predictions": 1        1: y_pred, y_next, y_rep_total, y_rep_zeros per entity
//   }

functions {
  // One draw from NegBinomial2(mean, phi) through its Gamma–Poisson mixture, as a real holding
  // an integer (as in hierarchical_negbinom.stan; an infinite mean gives +inf).
  real nb2_count_rng(real mean, real phi) {
    if (mean <= 0) {
      return 0;
    }
    if (is_inf(mean)) {
      return mean;
    }
    real rate = phi / mean;
    if (is_inf(rate)) {
      return 0;
    }
    real lambda = gamma_rng(phi, rate);
    if (lambda <= 0) {
      return 0;
    }
    if (lambda < 1e9) {
      return poisson_rng(lambda);
    }
    return fmax(0, round(normal_rng(lambda, sqrt(lambda))));
  }

  // The log-rate deviations eta (one per row) from the standard normal z: one pass, O(N).
  vector ar1_path(vector z, array[] int gap, real rho, real s) {
    int N = rows(z);
    real sigma = s * sqrt((1 - rho) * (1 + rho));  // (1 - rho)(1 + rho): accurate near |rho| = 1
    real rho2 = square(rho);
    vector[N] eta;
    for (n in 1:N) {
      if (gap[n] == 0) {
        eta[n] = s * z[n];
      } else if (gap[n] == 1) {
        eta[n] = rho * eta[n - 1] + sigma * z[n];
      } else {
        eta[n] = rho ^ gap[n] * eta[n - 1] + s * sqrt(1 - rho2 ^ gap[n]) * z[n];
      }
    }
    return eta;
  }

  // log density of rho under (rho + 1) / 2 ~ Beta(2, 2): log(3/4) + log(1 - rho^2).
  real rho_log_prior(real rho) {
    return beta_lpdf((rho + 1) / 2 | 2, 2) - log2();
  }
}

data {
  int<lower=1> J;
  int<lower=1> N;
  array[N] int<lower=1, upper=J> entity;
  array[N] int<lower=0> gap;
  array[N] int<lower=0> y;
  vector<lower=0>[N] exposure;
  real<lower=0> mu_rate;
  real<lower=0> alpha_sd;
  real<lower=0> phi_sd;
  real<lower=0> s_sd;
  int<lower=0, upper=1> prior_only;
  int<lower=0, upper=1> obs_predictions;
  int<lower=0, upper=1> path_output;
  int<lower=0, upper=1> entity_predictions;
}

transformed data {
  vector[N] log_exposure = log(exposure);
  array[J] int last_row;
  if (entity[1] != 1 || gap[1] != 0) {
    reject("row 1 must be the first window of entity 1 (entity = 1, gap = 0)");
  }
  for (n in 2:N) {
    if (entity[n] != entity[n - 1] && entity[n] != entity[n - 1] + 1) {
      reject("rows must be grouped by entity in order 1..J; row ", n, " has entity ",
             entity[n], " after ", entity[n - 1]);
    }
    if ((entity[n] != entity[n - 1]) != (gap[n] == 0)) {
      reject("gap must be 0 exactly on each entity's first row; row ", n, " has gap ", gap[n]);
    }
    if (entity[n] != entity[n - 1]) {
      last_row[entity[n - 1]] = n - 1;
    }
  }
  if (entity[N] != J) {
    reject("the last row's entity is ", entity[N], " but J = ", J);
  }
  last_row[J] = N;
  if (min(exposure) <= 0) {
    reject("exposure must be positive");
  }
}

parameters {
  real<lower=0> mu;
  real<lower=0> alpha;
  real<lower=0> phi;
  vector<lower=0>[J] theta;
  real<lower=-1, upper=1> rho;
  real<lower=0> s;
  vector[N] z;
}

model {
  target += exponential_lpdf(mu | mu_rate);
  target += normal_lpdf(alpha | 0, alpha_sd) + log2();
  target += normal_lpdf(phi | 0, phi_sd) + log2();
  target += gamma_lpdf(theta | mu * alpha, alpha);
  target += rho_log_prior(rho);
  target += normal_lpdf(s | 0, s_sd) + log2();
  target += std_normal_lpdf(z);
  if (!prior_only) {
    vector[N] log_mean = log(theta)[entity] + ar1_path(z, gap, rho, s) + log_exposure;
    target += neg_binomial_2_log_lpmf(y | log_mean, phi);
  }
}

generated quantities {
  // Under prior_only = 1: one exact ancestral prior draw (reported as *_prior, and everything
  // below from it). Otherwise everything comes from the current posterior draw.
  array[prior_only] real mu_prior;
  array[prior_only] real alpha_prior;
  array[prior_only] real phi_prior;
  array[prior_only] real rho_prior;
  array[prior_only] real s_prior;
  array[prior_only] real sigma_prior;
  vector[prior_only ? J : 0] theta_prior;

  // The innovation sd per step, from s and rho.
  real sigma = s * sqrt((1 - rho) * (1 + rho));

  // The joint log prior density of the hyperparameters mu, alpha, phi, rho and s at this
  // draw (as brms's lprior), fully normalised like the target; for power-scaling sensitivity.
  real lprior = exponential_lpdf(mu | mu_rate) + normal_lpdf(alpha | 0, alpha_sd)
                + normal_lpdf(phi | 0, phi_sd) + rho_log_prior(rho)
                + normal_lpdf(s | 0, s_sd) + 3 * log2();

  // An unseen entity: its median rate, and a count in one window of exposure 1 at a
  // stationary draw of its log-rate deviation.
  real theta_new;
  real y_new;

  // Per row: the latent rate lambda_ij (per unit exposure), a replicated count, the pointwise
  // log likelihood.
  vector[path_output ? N : 0] lambda;
  array[obs_predictions ? N : 0] real y_rep;
  vector[obs_predictions ? N : 0] log_lik;

  // Per entity (exposure 1):
  //   y_next       the count in the window one step after the entity's last observed window,
  //                given its latent path (one-step-ahead predictive);
  //   y_pred       the count in a window far from the data (stationary deviation);
  //   y_rep_total  replicated total over the entity's rows (the sum of its y_rep draws);
  //   y_rep_zeros  replicated number of zero windows.
  array[entity_predictions ? J : 0] real y_next;
  array[entity_predictions ? J : 0] real y_pred;
  array[entity_predictions ? J : 0] real y_rep_total;
  array[entity_predictions ? J : 0] int y_rep_zeros;

  {
    real mu_g = mu;
    real alpha_g = alpha;
    real phi_g = phi;
    real rho_g = rho;
    real s_g = s;
    vector[J] theta_g = theta;
    vector[N] z_g = z;
    if (prior_only) {
      mu_g = exponential_rng(mu_rate);
      alpha_g = abs(normal_rng(0, alpha_sd));
      phi_g = abs(normal_rng(0, phi_sd));
      rho_g = 2 * beta_rng(2, 2) - 1;
      s_g = abs(normal_rng(0, s_sd));
      for (i in 1:J) {
        theta_g[i] = gamma_rng(mu_g * alpha_g, alpha_g);
      }
      for (n in 1:N) {
        z_g[n] = std_normal_rng();
      }
      mu_prior[1] = mu_g;
      alpha_prior[1] = alpha_g;
      phi_prior[1] = phi_g;
      rho_prior[1] = rho_g;
      s_prior[1] = s_g;
      sigma_prior[1] = s_g * sqrt((1 - rho_g) * (1 + rho_g));
      theta_prior = theta_g;
    }
    real sigma_g = s_g * sqrt((1 - rho_g) * (1 + rho_g));
    vector[N] eta = ar1_path(z_g, gap, rho_g, s_g);
    vector[N] log_lambda = log(theta_g)[entity] + eta;

    theta_new = gamma_rng(mu_g * alpha_g, alpha_g);
    y_new = nb2_count_rng(theta_new * exp(s_g * std_normal_rng()), phi_g);

    if (path_output) {
      lambda = exp(log_lambda);
    }
    if (obs_predictions || entity_predictions) {
      vector[N] mean_n = exp(log_lambda + log_exposure);
      array[N] real y_draw;
      for (n in 1:N) {
        y_draw[n] = nb2_count_rng(mean_n[n], phi_g);
      }
      if (obs_predictions) {
        y_rep = y_draw;
        if (!prior_only) {
          for (n in 1:N) {
            log_lik[n] = neg_binomial_2_log_lpmf(y[n] | log_lambda[n] + log_exposure[n], phi_g);
          }
        }
      }
      if (entity_predictions) {
        for (i in 1:J) {
          y_rep_total[i] = 0;
          y_rep_zeros[i] = 0;
        }
        for (n in 1:N) {
          y_rep_total[entity[n]] += y_draw[n];
          y_rep_zeros[entity[n]] += y_draw[n] == 0;
        }
        for (i in 1:J) {
          real eta_next = rho_g * eta[last_row[i]] + sigma_g * std_normal_rng();
          y_next[i] = nb2_count_rng(theta_g[i] * exp(eta_next), phi_g);
          y_pred[i] = nb2_count_rng(theta_g[i] * exp(s_g * std_normal_rng()), phi_g);
        }
      }
    }
  }
}
