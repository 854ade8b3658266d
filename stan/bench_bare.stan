// The "bare" sampler of ratepool's base model, for scripts/benchmark.py only (not used by the
// package): the same priors and the same sufficient-statistics likelihood as
// stan/hierarchical_negbinom.stan with every option off (centred, likelihood = "sufficient"),
// with only mu, alpha, phi and theta, and no generated quantities. Timing ratepool's fit
// against this program measures what ratepool adds around Stan's sampling (generated
// quantities, transferring the draws, building the InferenceData). It reads the same data
// JSON as the packaged program (the extra fields are ignored).
data {
  int<lower=1> J;
  array[J] int<lower=1> n_windows;
  vector<lower=0>[J] entity_total;
  int<lower=0> K;
  array[K] int<lower=0> count_value;
  vector<lower=0>[K] count_freq;
  real<lower=0> mu_rate;
  real<lower=0> alpha_sd;
  real<lower=0> phi_sd;
}

transformed data {
  vector[J] n_windows_real = to_vector(n_windows);
  real grand_total = sum(entity_total);
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
  // S log(theta) over entities with S > 0 only (0 log 0 = 0, as the packaged program).
  int J_positive = 0;
  for (i in 1:J) {
    J_positive += entity_total[i] > 0;
  }
  array[J_positive] int positive_entities;
  {
    int next = 1;
    for (i in 1:J) {
      if (entity_total[i] > 0) {
        positive_entities[next] = i;
        next += 1;
      }
    }
  }
}

parameters {
  real<lower=0> mu;
  real<lower=0> alpha;
  real<lower=0> phi;
  vector<lower=0>[J] theta;
}

model {
  target += exponential_lpdf(mu | mu_rate);
  target += normal_lpdf(alpha | 0, alpha_sd) + log2();
  target += normal_lpdf(phi | 0, phi_sd) + log2();
  target += gamma_lpdf(theta | mu * alpha, alpha);
  target += -log_positive_value_sum - dot_product(positive_freq, lbeta(phi, positive_value))
            - dot_product(n_windows_real * phi + entity_total, log1p(theta / phi))
            + dot_product(entity_total[positive_entities], log(theta[positive_entities]))
            - grand_total * log(phi);
}
