# Differential test data: random data sets analysed by metafor, for tests/test_meta_differential.py.
#
# Run from the repository root (R >= 4.2 with metafor 3.8-1; Debian: apt-get install r-base-core r-cran-metafor):
#     Rscript tests/data/differential/generate.R
# It writes, beside this script,
#     inputs.csv.gz   one row per input number: dataset, family, kind, column, i, value
#     metafor.csv.gz  one row per output number: dataset, analysis, field, i, value  (NA = metafor's NA)
#     errors.csv.gz   analyses metafor refused: dataset, analysis, message
# Numbers are written with 17 significant digits, so each reads back as the double R computed.
# Iterative fits run to convergence (Fisher scoring threshold, uniroot tol and tau2.max scaled to the data),
# so they can be compared with reviewkit's exact solutions. Everything is seeded: rerunning gives the same files.

suppressPackageStartupMessages(library(metafor))
stopifnot(packageVersion("metafor") == "3.8.1")
invisible(Sys.setlocale("LC_COLLATE", "C"))  # factor levels sorted by code point, as Python's sorted()
set.seed(20240616)
out_dir <- file.path("tests", "data", "differential")

# ---------------------------------------------------------------- records
# Records are bindings in hashed environments: appending to a list would copy it every time.
store <- list(inp = new.env(hash = TRUE), res = new.env(hash = TRUE), err = new.env(hash = TRUE))
counts <- c(inp = 0L, res = 0L, err = 0L)
put <- function(s, rec) {
  counts[[s]] <<- counts[[s]] + 1L
  assign(sprintf("r%07d", counts[[s]]), rec, envir = store[[s]])
}
num <- function(x) { x <- unlist(x); if (is.null(x)) numeric(0) else as.numeric(x) }
add_input <- function(ds, family, kind, column, x) put("inp", list(ds = ds, family = family, kind = kind, column = column, x = num(x)))
add <- function(ds, analysis, field, x) { x <- num(x); if (length(x)) put("res", list(ds = ds, analysis = analysis, field = field, x = x)) }
attempt <- function(ds, analysis, expr) {
  tryCatch(suppressWarnings(expr), error = function(e) {
    put("err", list(ds = ds, analysis = analysis, x = 0, message = gsub("[\r\n]+", " ", conditionMessage(e))))
    NULL
  })
}

# ---------------------------------------------------------------- controls
# Converged fits: the Fisher scoring threshold is absolute, so scale it to the data's variances.
tight <- function(yi, vi) {
  s <- mean(vi) + var(c(yi, yi))  # var of a doubled vector: defined for k = 1 too
  list(threshold = 1e-11 * s, tol = 1e-14 * min(vi), maxiter = 10000,
       tau2.max = 100 * length(yi) * (max(vi) + s) + 100)
}
methods <- c("FE", "DL", "REML", "PM", "ML", "HE", "SJ")

fit_fields <- function(ds, name, fit) {
  pr <- predict(fit)
  add(ds, name, "estimate", fit$beta); add(ds, name, "se", fit$se); add(ds, name, "zval", fit$zval)
  add(ds, name, "pval", fit$pval); add(ds, name, "ci.lb", fit$ci.lb); add(ds, name, "ci.ub", fit$ci.ub)
  add(ds, name, "tau2", fit$tau2); add(ds, name, "se.tau2", if (is.null(fit$se.tau2)) NA else fit$se.tau2)
  add(ds, name, "I2", fit$I2); add(ds, name, "H2", fit$H2); add(ds, name, "QE", fit$QE); add(ds, name, "QEp", fit$QEp)
  add(ds, name, "pi.lb", if (is.null(pr$pi.lb)) NA else pr$pi.lb)
  add(ds, name, "pi.ub", if (is.null(pr$pi.ub)) NA else pr$pi.ub)
}

modfit_fields <- function(ds, name, fit) {
  for (f in c("beta", "se", "zval", "pval", "ci.lb", "ci.ub")) add(ds, name, f, fit[[f]])
  for (f in c("QM", "QMp", "QE", "QEp", "tau2", "I2", "H2")) add(ds, name, f, fit[[f]])
  add(ds, name, "se.tau2", if (is.null(fit$se.tau2)) NA else fit$se.tau2)
  add(ds, name, "R2", if (is.null(fit$R2)) NA else fit$R2)
}

l1o_fields <- function(ds, name, l) {
  for (f in c("estimate", "se", "ci.lb", "ci.ub", "Q", "Qp", "I2", "H2")) add(ds, name, f, l[[f]])
  add(ds, name, "pval", if (is.null(l$pval)) l$pvals else l$pval)  # cumul() calls it pvals
  add(ds, name, "zval", if (is.null(l$zval)) l$tval else l$zval)
  if (!is.null(l$tau2)) add(ds, name, "tau2", l$tau2)
}

# ---------------------------------------------------------------- analyses
analyse_yivi <- function(ds, yi, vi, extras) {
  k <- length(yi); ctl <- tight(yi, vi)
  for (m in methods) for (tst in c("z", "knha")) {
    name <- paste0("rma_", m, "_", tst)
    fit <- attempt(ds, name, rma(yi, vi, method = m, test = tst, control = ctl))
    if (!is.null(fit)) fit_fields(ds, name, fit)
  }
  if (k >= 2) {
    fit <- attempt(ds, "confint", rma(yi, vi, method = "REML", control = ctl))
    crit <- qchisq(0.025, k - 1)
    top <- 10 * (sum((yi - mean(yi))^2) / crit + max(vi) + 100)
    ci <- if (!is.null(fit)) attempt(ds, "confint", confint(fit, control = list(tol = 1e-15 * min(vi), tau2.max = top, maxiter = 10000)))
    if (!is.null(ci)) {
      r <- ci$random
      add(ds, "confint", "tau2.ci", r["tau^2", c("ci.lb", "ci.ub")]); add(ds, "confint", "I2.ci", r["I^2(%)", c("ci.lb", "ci.ub")])
      add(ds, "confint", "H2.ci", r["H^2", c("ci.lb", "ci.ub")])
    }
  }
  if (!extras || k < 2) return(invisible())
  for (m in c("FE", "REML")) {
    fit <- attempt(ds, paste0("leave1out_", m), rma(yi, vi, method = m, control = ctl))
    l <- if (!is.null(fit)) attempt(ds, paste0("leave1out_", m), leave1out(fit))
    if (!is.null(l)) l1o_fields(ds, paste0("leave1out_", m), l)
  }
  fit <- attempt(ds, "leave1out_DL_knha", rma(yi, vi, method = "DL", test = "knha"))
  l <- if (!is.null(fit)) attempt(ds, "leave1out_DL_knha", leave1out(fit))
  if (!is.null(l)) l1o_fields(ds, "leave1out_DL_knha", l)
  year <- sample(1990:(1990 + max(1, k %/% 2)), k, replace = TRUE)  # ties on purpose
  add_input(ds, NA, NA, "year", year)
  fit <- attempt(ds, "cumul_REML", rma(yi, vi, method = "REML", control = ctl))
  cu <- if (!is.null(fit)) attempt(ds, "cumul_REML", cumul(fit, order = year))
  if (!is.null(cu)) { l1o_fields(ds, "cumul_REML", cu); add(ds, "cumul_REML", "order", order(year) - 1) }
  if (k < 3) return(invisible())
  for (m in c("FE", "DL", "REML")) for (tst in c("z", "knha")) {
    if (m != "REML" && tst == "knha") next
    name <- paste0("regtest_", m, "_", tst)
    fit <- attempt(ds, name, rma(yi, vi, method = m, test = tst, control = ctl))
    rt <- if (!is.null(fit)) attempt(ds, name, regtest(fit))
    if (!is.null(rt)) {
      add(ds, name, "zval", rt$zval); add(ds, name, "pval", rt$pval); add(ds, name, "limit", rt$est)
      add(ds, name, "limit.ci", c(rt$ci.lb, rt$ci.ub))
      add(ds, name, "fit_beta", rt$fit$beta); add(ds, name, "fit_se", rt$fit$se); add(ds, name, "fit_tau2", rt$fit$tau2)
    }
  }
  fit <- attempt(ds, "regtest_lm", rma(yi, vi))
  rt <- if (!is.null(fit)) attempt(ds, "regtest_lm", regtest(fit, model = "lm"))
  if (!is.null(rt)) {
    add(ds, "regtest_lm", "zval", rt$zval); add(ds, "regtest_lm", "pval", rt$pval); add(ds, "regtest_lm", "limit", rt$est)
    add(ds, "regtest_lm", "limit.ci", c(rt$ci.lb, rt$ci.ub))
  }
  rk <- attempt(ds, "ranktest", ranktest(yi, vi))
  if (!is.null(rk)) { add(ds, "ranktest", "tau", rk$tau); add(ds, "ranktest", "pval", rk$pval) }
  for (m in c("FE", "DL", "REML")) {
    name <- paste0("trimfill_", m)
    fit <- attempt(ds, name, rma(yi, vi, method = m, control = ctl))
    tf <- if (!is.null(fit)) attempt(ds, name, trimfill(fit, control = ctl))
    if (!is.null(tf)) {
      add(ds, name, "k0", tf$k0); add(ds, name, "side", as.numeric(tf$side == "right"))
      for (f in c("beta", "se", "ci.lb", "ci.ub", "tau2", "QE")) add(ds, name, f, tf[[f]])
      add(ds, name, "yi", tf$yi); add(ds, name, "vi", tf$vi)
    }
  }
}

analyse_tables <- function(ds, ai, n1i, ci, n2i) {
  for (m in c("OR", "RR", "RD")) {
    e <- escalc(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i)
    add(ds, paste0("escalc_", m), "yi", e$yi); add(ds, paste0("escalc_", m), "vi", e$vi)
    name <- paste0("rma.mh_", m)
    mh <- attempt(ds, name, rma.mh(measure = m, ai = ai, n1i = n1i, ci = ci, n2i = n2i))
    if (!is.null(mh)) {
      for (f in c("beta", "se", "zval", "pval", "ci.lb", "ci.ub", "QE", "QEp", "I2", "H2", "k.yi")) add(ds, name, f, mh[[f]])
    }
  }
  pt <- attempt(ds, "rma.peto", rma.peto(ai = ai, n1i = n1i, ci = ci, n2i = n2i))
  if (!is.null(pt)) for (f in c("beta", "se", "zval", "pval", "ci.lb", "ci.ub", "QE", "QEp", "I2", "H2", "k.yi")) add(ds, "rma.peto", f, pt[[f]])
  e <- escalc(measure = "OR", ai = ai, n1i = n1i, ci = ci, n2i = n2i)
  for (m in c("DL", "REML")) {
    fit <- attempt(ds, paste0("rma_OR_", m), rma(e$yi, e$vi, method = m, control = tight(e$yi, e$vi)))
    if (!is.null(fit)) fit_fields(ds, paste0("rma_OR_", m), fit)
  }
}

analyse_means <- function(ds, m1i, sd1i, n1i, m2i, sd2i, n2i) {
  for (m in c("MD", "SMD")) {
    e <- escalc(measure = m, m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i)
    add(ds, paste0("escalc_", m), "yi", e$yi); add(ds, paste0("escalc_", m), "vi", e$vi)
  }
  e <- escalc(measure = "SMD", m1i = m1i, sd1i = sd1i, n1i = n1i, m2i = m2i, sd2i = sd2i, n2i = n2i)
  for (tst in c("z", "knha")) {
    name <- paste0("rma_SMD_REML_", tst)
    fit <- attempt(ds, name, rma(e$yi, e$vi, method = "REML", test = tst, control = tight(e$yi, e$vi)))
    if (!is.null(fit)) fit_fields(ds, name, fit)
  }
}

analyse_props <- function(ds, xi, ni) {
  for (m in c("PLO", "PR")) {
    e <- escalc(measure = m, xi = xi, ni = ni)
    add(ds, paste0("escalc_", m), "yi", e$yi); add(ds, paste0("escalc_", m), "vi", e$vi)
  }
  e <- escalc(measure = "PLO", xi = xi, ni = ni)
  for (m in c("DL", "REML")) {
    name <- paste0("rma_PLO_", m)
    fit <- attempt(ds, name, rma(e$yi, e$vi, method = m, control = tight(e$yi, e$vi)))
    if (!is.null(fit)) {
      fit_fields(ds, name, fit)
      pr <- predict(fit, transf = transf.ilogit)
      add(ds, name, "ilogit", c(pr$pred, pr$ci.lb, pr$ci.ub, pr$pi.lb, pr$pi.ub))
    }
  }
}

analyse_groups <- function(ds, yi, vi, g) {
  ctl <- tight(yi, vi)
  lev <- sort(unique(g))
  for (m in c("FE", "DL", "REML")) for (tst in c("z", "knha")) {
    if (m != "REML" && tst == "knha") next
    tag <- paste0(m, "_", tst)
    fits <- lapply(lev, function(l) attempt(ds, paste0("separate_", tag), rma(yi[g == l], vi[g == l], method = m, test = tst, control = tight(yi[g == l], vi[g == l]))))
    if (!any(sapply(fits, is.null))) {
      est <- sapply(fits, function(f) c(f$beta)); sei <- sapply(fits, function(f) f$se)
      add(ds, paste0("separate_", tag), "estimate", est); add(ds, paste0("separate_", tag), "se", sei)
      add(ds, paste0("separate_", tag), "tau2", sapply(fits, function(f) f$tau2))
      if (length(lev) > 1) {
        qb <- attempt(ds, paste0("separate_", tag), rma(est, sei = sei, method = "FE"))
        if (!is.null(qb)) { add(ds, paste0("separate_", tag), "Q_between", qb$QE); add(ds, paste0("separate_", tag), "Q_between_p", qb$QEp) }
      }
    }
    if (length(lev) > 1) {
      fit <- attempt(ds, paste0("moderator_", tag), rma(yi, vi, mods = ~ factor(g), method = m, test = tst, control = ctl))
      if (!is.null(fit)) modfit_fields(ds, paste0("moderator_", tag), fit)
    }
  }
}

analyse_metareg <- function(ds, yi, vi, x) {
  ctl <- tight(yi, vi)
  for (m in methods) for (tst in c("z", "knha")) {
    name <- paste0("metareg_", m, "_", tst)
    fit <- attempt(ds, name, rma(yi, vi, mods = ~ x, method = m, test = tst, control = ctl))
    if (!is.null(fit)) modfit_fields(ds, name, fit)
    if (!is.null(fit) && m != "FE") add(ds, name, "tau2_0", rma(yi, vi, method = m, control = ctl)$tau2)  # R2's reference
  }
}

# ---------------------------------------------------------------- data sets
n_ds <- 0L
new_ds <- function() { n_ds <<- n_ds + 1L; sprintf("d%04d", n_ds) }
rk <- function(lo, hi) sample(lo:hi, 1)

yivi_family <- function(family, n, gen, extras_every = 3) {
  for (j in seq_len(n)) {
    d <- gen(); ds <- new_ds()
    add_input(ds, family, "yivi", "yi", d$yi); add_input(ds, family, "yivi", "vi", d$vi)
    analyse_yivi(ds, d$yi, d$vi, extras = (j %% extras_every == 1) && length(d$yi) <= 20)
  }
}
normal_data <- function(k, vlo, vhi, tau2_rel, mu = rnorm(1)) {
  vi <- exp(runif(k, log(vlo), log(vhi)))
  list(yi = mu * sqrt(mean(vi)) + rnorm(k, 0, sqrt(tau2_rel * mean(vi))) + rnorm(k, 0, sqrt(vi)), vi = vi)
}

yivi_family("typical", 120, function() normal_data(rk(2, 40), 0.01, 0.5, sample(c(0, 0.3, 1, 3), 1)))
yivi_family("k1_k2", 40, function() normal_data(rk(1, 2), 0.01, 0.5, 1))
yivi_family("large_k", 40, function() normal_data(rk(50, 73), 0.005, 1, sample(c(0, 0.5, 2), 1)), extras_every = 1000)
yivi_family("tiny_tau2", 60, function() normal_data(rk(3, 30), 0.01, 0.5, 1e-4))
yivi_family("huge_tau2", 60, function() normal_data(rk(3, 30), 0.01, 0.5, 1e4))
yivi_family("tiny_vi", 60, function() normal_data(rk(2, 30), 1e-9, 1e-6, sample(c(0, 1, 10), 1)))
yivi_family("huge_vi", 60, function() normal_data(rk(2, 30), 1e2, 1e4, sample(c(0, 1, 10), 1)))
yivi_family("wide_vi", 60, function() normal_data(rk(3, 30), 1e-3, 1e2, sample(c(0, 0.1, 1), 1)))
yivi_family("identical_yi", 50, function() { k <- rk(2, 25); list(yi = rep(round(rnorm(1), 3), k), vi = exp(runif(k, log(0.01), log(1)))) })
yivi_family("near_identical_yi", 50, function() { k <- rk(2, 25); list(yi = 6.62607015 + rnorm(k, 0, 1e-9), vi = exp(runif(k, log(1e-4), log(1)))) })
# Small k, variances over three orders of magnitude, effects spread by up to 3 se: where the
# (restricted) likelihood can peak inside while decreasing at tau2 = 0 (issue 16, discrepancy 1).
yivi_family("multimodal", 150, function() { k <- rk(3, 7); vi <- exp(runif(k, -6, 3)); list(yi = rnorm(k) * sqrt(vi) * runif(1, 0.2, 3), vi = vi) })

tables_family <- function(family, n, gen) {
  for (j in seq_len(n)) {
    d <- gen(); ds <- new_ds()
    for (col in c("ai", "n1i", "ci", "n2i")) add_input(ds, family, "2x2", col, d[[col]])
    analyse_tables(ds, d$ai, d$n1i, d$ci, d$n2i)
  }
}
tables <- function(k, nlo, nhi, plo, phi, or = exp(rnorm(1, 0, 0.7))) {
  n1i <- sample(nlo:nhi, k, replace = TRUE); n2i <- sample(nlo:nhi, k, replace = TRUE)
  p2 <- runif(k, plo, phi); p1 <- plogis(qlogis(p2) + log(or))
  list(ai = rbinom(k, n1i, p1), n1i = n1i, ci = rbinom(k, n2i, p2), n2i = n2i)
}
tables_family("tables_typical", 60, function() tables(rk(1, 30), 20, 400, 0.05, 0.6))
tables_family("tables_rare", 60, function() tables(rk(2, 30), 30, 400, 0.001, 0.02))
tables_family("tables_tiny_n", 40, function() tables(rk(2, 20), 1, 6, 0.1, 0.9))
tables_family("tables_double_zero", 40, function() { d <- tables(rk(2, 20), 10, 100, 0.01, 0.1); z <- sample(seq_along(d$ai), max(1, length(d$ai) %/% 3)); d$ai[z] <- 0; d$ci[z] <- 0; d })
tables_family("tables_zero_arm", 50, function() { d <- tables(rk(1, 15), 10, 100, 0.05, 0.4); if (runif(1) < 0.5) d$ai[] <- 0 else d$ci[] <- 0; d })
tables_family("tables_all_events", 50, function() {
  d <- tables(rk(2, 15), 5, 60, 0.5, 0.95); z <- sample(seq_along(d$ai), max(1, length(d$ai) %/% 3))
  d$ai[z] <- d$n1i[z]; d$ci[z] <- d$n2i[z]
  if (runif(1) < 0.3) d$ai[] <- d$n1i  # a whole arm with only events
  d
})

for (j in seq_len(60)) {
  k <- rk(1, 20); n1i <- sample(2:10, k, replace = TRUE); n2i <- sample(2:10, k, replace = TRUE)
  sd1i <- exp(rnorm(k)); sd2i <- sd1i * exp(rnorm(k, 0, 0.3)); m2i <- rnorm(k, 10, 2); m1i <- m2i + rnorm(k, 0.5, 1)
  ds <- new_ds()
  for (col in c("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")) add_input(ds, "means_tiny_n", "means", col, get(col))
  analyse_means(ds, m1i, sd1i, n1i, m2i, sd2i, n2i)
}

for (j in seq_len(60)) {
  k <- rk(1, 25); ni <- sample(3:300, k, replace = TRUE); p <- plogis(rnorm(1, 0, 1.5) + rnorm(k, 0, 0.8))
  xi <- rbinom(k, ni, p)
  if (runif(1) < 0.4) { z <- sample(seq_len(k), 1); xi[z] <- if (runif(1) < 0.5) 0 else ni[z] }
  ds <- new_ds()
  add_input(ds, "proportions", "prop", "xi", xi); add_input(ds, "proportions", "prop", "ni", ni)
  analyse_props(ds, xi, ni)
}

for (j in seq_len(80)) {
  G <- rk(2, 5); sizes <- sample(1:8, G, replace = TRUE); if (runif(1) < 0.5) sizes[1] <- 1  # groups of one study
  g <- rep(sprintf("g%02d", seq_len(G)), sizes); k <- length(g)
  shift <- rnorm(G, 0, 0.5)[match(g, sort(unique(g)))]
  d <- normal_data(k, 0.01, 0.5, sample(c(0, 0.5, 2), 1)); yi <- d$yi + shift
  ds <- new_ds()
  add_input(ds, "subgroups", "groups", "yi", yi); add_input(ds, "subgroups", "groups", "vi", d$vi)
  add_input(ds, "subgroups", "groups", "group", match(g, sort(unique(g))))
  analyse_groups(ds, yi, d$vi, g)
}

for (j in seq_len(80)) {
  k <- rk(3, 40); x <- round(runif(k, 1990, 2020)); if (runif(1) < 0.3) x <- runif(k, 0, 1)
  d <- normal_data(k, 0.01, 0.5, sample(c(0, 0.5, 2), 1)); yi <- d$yi + rnorm(1, 0, 0.05) * (x - mean(x))
  ds <- new_ds()
  add_input(ds, "metareg", "metareg", "yi", yi); add_input(ds, "metareg", "metareg", "vi", d$vi)
  add_input(ds, "metareg", "metareg", "x", x)
  analyse_metareg(ds, yi, d$vi, x)
}

# ---------------------------------------------------------------- write
long <- function(store, cols) {
  n <- vapply(store, function(r) length(r$x), 1L)
  out <- lapply(cols, function(c) rep(vapply(store, function(r) as.character(r[[c]]), ""), n))
  names(out) <- cols
  out$i <- unlist(lapply(n, function(m) seq_len(m) - 1L))
  out$value <- sprintf("%.17g", unlist(lapply(store, `[[`, "x")))
  as.data.frame(out, stringsAsFactors = FALSE)
}
used <- function(s) unname(mget(sprintf("r%07d", seq_len(counts[[s]])), envir = store[[s]]))
inp <- used("inp"); res <- used("res"); err <- used("err")
inputs <- long(inp, c("ds", "family", "kind", "column"))
# the year column of the extras is recorded without family/kind: take them from the data set's other rows
fam <- unique(inputs[!is.na(inputs$family) & inputs$family != "NA", c("ds", "family", "kind")])
inputs$family <- fam$family[match(inputs$ds, fam$ds)]; inputs$kind <- fam$kind[match(inputs$ds, fam$ds)]
names(inputs)[1] <- "dataset"
outputs <- long(res, c("ds", "analysis", "field")); names(outputs)[1] <- "dataset"
errors <- data.frame(dataset = vapply(err, `[[`, "", "ds"), analysis = vapply(err, `[[`, "", "analysis"),
                     message = vapply(err, `[[`, "", "message"), stringsAsFactors = FALSE)
write_gz <- function(df, name) { con <- gzfile(file.path(out_dir, name), "w"); write.csv(df, con, row.names = FALSE); close(con) }
write_gz(inputs, "inputs.csv.gz"); write_gz(outputs, "metafor.csv.gz"); write_gz(errors, "errors.csv.gz")
cat(sprintf("%d data sets, %d input numbers, %d metafor numbers, %d refused analyses\n",
            n_ds, nrow(inputs), nrow(outputs), nrow(errors)))
cat(R.version.string, "metafor", as.character(packageVersion("metafor")), "\n")
