#!/usr/bin/env Rscript
# make-fixtures.R writes wilcox.json: the cases the Go package stats checks its
# MannWhitney against, each run through R's own wilcox.test(x, y,
# conf.int = TRUE, ...). Regenerate from the repository root with
#
#   Rscript stats/testdata/make-fixtures.R
#
# It needs base R only (Debian's r-base-core); the JSON is written by hand
# with sprintf("%.17g") so every double survives the trip to Go exactly.
# NA is written as null, +-Inf as the strings "Inf" and "-Inf"; a case that
# R refuses carries R's error message instead of results.

args <- commandArgs(trailingOnly = FALSE)
here <- dirname(normalizePath(sub("^--file=", "", args[grep("^--file=", args)])))
out <- file.path(here, "wilcox.json")

cases <- list()
add <- function(name, x, y, conf.level = 0.95, alternative = "two.sided",
                exact = NULL, correct = TRUE, note = "") {
  cases[[length(cases) + 1L]] <<- list(
    name = name, x = x, y = y, conf.level = conf.level,
    alternative = alternative, exact = exact, correct = correct, note = note)
}

# Small samples without ties: R picks the exact distribution (both n < 50).
# x and y are the example from ?wilcox.test (permeability constants).
xp <- c(0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46)
yp <- c(1.15, 0.88, 0.90, 0.74, 1.21)
add("exact_small_two_sided", xp, yp)
add("exact_small_greater", xp, yp, alternative = "greater")
add("exact_small_less", xp, yp, alternative = "less")
add("exact_small_conf90", xp, yp, conf.level = 0.90)
add("exact_small_conf98", xp, yp, conf.level = 0.98)
add("exact_small_conf99", xp, yp, conf.level = 0.99)
add("exact_swapped", yp, xp)

set.seed(20261126)
a <- round(rnorm(12, 100, 10), 3)
b <- round(rnorm(15, 104, 10), 3)
add("exact_12_vs_15", a, b)
add("exact_12_vs_15_less", a, b, alternative = "less", conf.level = 0.9)

set.seed(21)
add("exact_mixed_signs", round(rnorm(18, 0.4, 1), 5), round(rnorm(22, 0, 1), 5), conf.level = 0.9)

# Complete separation: the smallest p-value the exact distribution can give.
add("exact_separated", c(11, 12, 13, 14, 15, 16, 17, 18, 19, 20) + 0.5,
    c(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))

# Tiny samples.
add("n1_vs_n5", 3.5, c(1.1, 2.2, 4.4, 5.5, 6.6),
    note = "n = 1: the interval is the whole range of differences")
add("n5_vs_n1", c(1.1, 2.2, 4.4, 5.5, 6.6), 3.5)
add("n1_vs_n1", 2, 1)
add("n1_vs_n5_greater", 9, c(1.1, 2.2, 4.4, 5.5, 6.6), alternative = "greater")

# Just inside and just outside R's exact rule (both n < 50).
set.seed(7)
add("exact_49_vs_49", round(rnorm(49, 1.3, 1), 6), round(rnorm(49, 1, 1), 6))
set.seed(8)
add("approx_50_vs_50", round(rnorm(50, 1.3, 1), 6), round(rnorm(50, 1, 1), 6))
set.seed(9)
add("exact_forced_60_vs_70", round(rnorm(60, 0.2, 1), 6), round(rnorm(70, 0, 1), 6),
    exact = TRUE)
add("approx_forced_no_ties", xp, yp, exact = FALSE)
add("approx_forced_no_ties_uncorrected", xp, yp, exact = FALSE, correct = FALSE)
add("approx_forced_greater", xp, yp, exact = FALSE, alternative = "greater")
add("approx_forced_less", xp, yp, exact = FALSE, alternative = "less")

# Ties force the normal approximation even when exact is asked for.
ti <- c(1, 2, 2, 3, 3, 3, 4, 5, 5, 7)
tj <- c(2, 3, 4, 4, 4, 5, 6, 6, 8)
add("ties_two_sided", ti, tj)
add("ties_less", ti, tj, alternative = "less")
add("ties_greater", ti, tj, alternative = "greater", conf.level = 0.9)
add("ties_uncorrected", ti, tj, correct = FALSE)
add("ties_greater_uncorrected", ti, tj, correct = FALSE, alternative = "greater")
add("ties_exact_requested", ti, tj, exact = TRUE,
    note = "R warns it cannot compute exact p-values or intervals with ties")
add("ties_within_x_only", c(1.5, 1.5, 2.5, 3.5), c(0.25, 4.75, 5.25))
set.seed(11)
add("ties_counts_60_vs_55", rpois(60, 4), rpois(55, 5), conf.level = 0.98)

# Equal samples: every value tied across the two, W = n.x * n.y / 2.
add("equal_samples", c(1.1, 2.2, 3.3, 4.4, 5.5), c(1.1, 2.2, 3.3, 4.4, 5.5))
add("equal_samples_permuted", c(5.5, 1.1, 4.4, 2.2, 3.3), c(1.1, 2.2, 3.3, 4.4, 5.5),
    alternative = "greater")

# Cases R refuses: the Go side must return an error too.
add("all_tied", c(1, 1, 1), c(1, 1),
    note = "every observation tied: the variance is 0, R cannot find an interval")
add("both_constant", c(2, 2, 2), c(1, 1, 1, 1),
    note = "shifting by min(x) - max(y) ties everything: R stops")
add("empty_x", numeric(0), c(1, 2, 3))
add("empty_y", c(1, 2, 3), numeric(0))

# Moderate and large samples: the normal approximation, R's uniroot intervals.
set.seed(12)
add("approx_200_separated", round(rnorm(200, 10, 1), 6) + 100, round(rnorm(200, 10, 1), 6),
    note = "complete separation: p is far below 1e-60")
set.seed(13)
add("approx_rexp_300_vs_250_conf80", round(rexp(300, 1/120), 4), round(rexp(250, 1/100), 4),
    conf.level = 0.8)
add("approx_rexp_300_vs_250_greater_conf999", round(rexp(300, 1/120), 4),
    round(rexp(250, 1/100), 4), conf.level = 0.999, alternative = "greater")

set.seed(20260101)
add("large_10k_rnorm", signif(rnorm(10000, 0.02, 1), 6), signif(rnorm(10000, 0, 1), 6),
    conf.level = 0.98,
    note = "10,000 + 10,000 points rounded to 6 significant digits (some ties)")
set.seed(20260102)
add("large_10k_rexp_latency", signif(rexp(10000, 1/210), 6), signif(rexp(10000, 1/200), 6),
    conf.level = 0.95, alternative = "greater")

num <- function(v) {
  if (is.null(v) || length(v) == 0L || is.na(v)) return("null")
  if (is.infinite(v)) return(if (v > 0) "\"Inf\"" else "\"-Inf\"")
  sprintf("%.17g", v)
}
vec <- function(v) paste0("[", paste(vapply(v, num, ""), collapse = ","), "]")
str <- function(s) {
  s <- gsub("\\\\", "\\\\\\\\", s)
  s <- gsub("\"", "\\\\\"", s)
  s <- gsub("\n", " ", s)
  paste0("\"", s, "\"")
}
lgl <- function(b) if (is.null(b)) "null" else if (b) "true" else "false"

blocks <- character(0)
for (cs in cases) {
  warns <- character(0)
  res <- withCallingHandlers(
    tryCatch(
      wilcox.test(cs$x, cs$y, alternative = cs$alternative, exact = cs$exact,
                  correct = cs$correct, conf.int = TRUE, conf.level = cs$conf.level),
      error = function(e) e),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  fields <- c(
    sprintf("\"name\": %s", str(cs$name)),
    sprintf("\"note\": %s", str(cs$note)),
    sprintf("\"x\": %s", vec(cs$x)),
    sprintf("\"y\": %s", vec(cs$y)),
    sprintf("\"conf_level\": %s", num(cs$conf.level)),
    sprintf("\"alternative\": %s", str(cs$alternative)),
    sprintf("\"exact\": %s", lgl(cs$exact)),
    sprintf("\"correct\": %s", lgl(cs$correct)),
    sprintf("\"warnings\": [%s]", paste(vapply(warns, str, ""), collapse = ",")))
  if (inherits(res, "error")) {
    fields <- c(fields, sprintf("\"error\": %s", str(conditionMessage(res))))
  } else {
    fields <- c(fields,
      "\"error\": null",
      sprintf("\"method\": %s", str(res$method)),
      sprintf("\"exact_used\": %s", lgl(grepl("exact", res$method, fixed = TRUE))),
      sprintf("\"statistic\": %s", num(unname(res$statistic))),
      sprintf("\"p_value\": %s", num(res$p.value)),
      sprintf("\"estimate\": %s", num(unname(res$estimate))),
      sprintf("\"conf_int\": %s", vec(as.numeric(res$conf.int))),
      sprintf("\"conf_level_achieved\": %s", num(attr(res$conf.int, "conf.level"))))
  }
  blocks <- c(blocks, paste0("{\n", paste0("  ", fields, collapse = ",\n"), "\n}"))
}

# The distributions underneath, checked on their own.
qn <- character(0)
for (p in c(1e-300, 1e-20, 1e-10, 1e-5, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075,
            0.1, 0.2, 0.3, 0.5, 0.7, 0.925, 0.95, 0.975, 0.99, 0.999999)) {
  for (lower in c(TRUE, FALSE)) {
    qn <- c(qn, sprintf("{\"p\": %s, \"lower\": %s, \"q\": %s}",
                        num(p), lgl(lower), num(qnorm(p, lower.tail = lower))))
  }
}
pn <- character(0)
for (z in c(-38, -30, -20, -10, -5, -2.5, -1, -0.5, -1e-8, 0, 0.3, 1, 1.96, 3, 8, 12, 30)) {
  pn <- c(pn, sprintf("{\"z\": %s, \"lower\": %s, \"upper\": %s}",
                      num(z), num(pnorm(z)), num(pnorm(z, lower.tail = FALSE))))
}
pw <- character(0)
for (mn in list(c(1, 1), c(1, 5), c(3, 4), c(10, 5), c(20, 25), c(49, 49), c(60, 70))) {
  m <- mn[1]; n <- mn[2]
  for (q in unique(round(c(-1, 0, 1, m * n / 4, m * n / 2 - 1, m * n / 2, m * n / 2 + 0.5,
                           m * n - 3, m * n - 1, m * n)))) {
    pw <- c(pw, sprintf("{\"q\": %s, \"m\": %s, \"n\": %s, \"lower\": %s, \"upper\": %s}",
                        num(q), num(m), num(n), num(pwilcox(q, m, n)),
                        num(pwilcox(q, m, n, lower.tail = FALSE))))
  }
}
qw <- character(0)
for (mn in list(c(1, 1), c(1, 5), c(3, 4), c(10, 5), c(20, 25), c(49, 49), c(60, 70))) {
  m <- mn[1]; n <- mn[2]
  for (p in c(0.0005, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 0.9, 0.975)) {
    qw <- c(qw, sprintf("{\"p\": %s, \"m\": %s, \"n\": %s, \"q\": %s}",
                        num(p), num(m), num(n), num(qwilcox(p, m, n))))
  }
}
join <- function(v) paste0("[\n", paste0("  ", v, collapse = ",\n"), "\n]")

con <- file(out, "w")
writeLines(c(
  "{",
  sprintf("\"generator\": %s,", str("stats/testdata/make-fixtures.R")),
  sprintf("\"r_version\": %s,", str(R.version.string)),
  "\"cases\": [",
  paste(blocks, collapse = ",\n"),
  "],",
  sprintf("\"qnorm\": %s,", join(qn)),
  sprintf("\"pnorm\": %s,", join(pn)),
  sprintf("\"pwilcox\": %s,", join(pw)),
  sprintf("\"qwilcox\": %s", join(qw)),
  "}"), con)
close(con)
cat(sprintf("wrote %d cases to %s\n", length(cases), out))
