"""Gaussian-process Shapley values: Bayesian regression of the game in the Walsh basis.

KernelSHAP fits the game with a linear function of the coalition; paired sampling makes that
equivalent to a quadratic fit (Fumagalli, Witter & Musco 2026, PolySHAP). This estimator fits
*all* interaction orders at once with a Gaussian-process prior whose variance decays with the
order, and returns the Shapley value of the posterior mean, which is available in closed form.

Model. Coalitions are coded ``s in {-1, +1}^n``. A game's Shapley value depends only on its odd
part ``(v(s) - v(-s)) / 2``, which every complementary pair observes exactly through
``d = v(z) - v(1 - z)``. The prior on ``d`` is a zero-mean GP with the odd part of the product
kernel ``prod_j (1 + c_j s_j s'_j)``: the Walsh monomial ``s_T`` (``|T|`` odd) gets prior
variance ``prod_{j in T} c_j``, so interactions of high order are believed to be small but
never excluded. With ``lambda_j = 2 artanh(c_j)`` and ``D`` the lambda-weighted Hamming distance,
the (normalised) kernel is ``(exp(-D(s, s')) - exp(-D(s, -s'))) / 2``.

Shapley value of the posterior mean. The Shapley value of ``s_T`` is ``2 / |T|`` for each
``i in T`` (zero for even ``|T|``), so the value of ``phi_i`` on ``s -> k(s, s')`` is
``c_i s'_i * integral_0^1 even part of prod_{j != i} (1 + t c_j s'_j) dt`` (using
``1/(r+1) = integral t^r``), computed exactly by Gauss–Legendre quadrature. The posterior
variance of ``phi_i`` is closed form as well and gives the standard errors.

Hyperparameters, per sample and target, by maximum marginal likelihood (type-II ML, with the
amplitude profiled out): first an isotropic kernel (``lambda_j = Lambda / n`` with ``Lambda`` on
a grid) plus an extra main-effect term ``tau * s . s' / n`` (``tau`` in {0, 10, 1e6}: main effects
shrunk like the rest, lightly, or practically not at all — the last recovers additive games to
~1e-8), then an ARD kernel whose ``lambda_j`` is proportional to the isotropic estimate
``|phi_j|`` — for a saturating model such as ``sigmoid(w . x)`` the interaction coefficients
scale with the products of the main effects — with its total scale at 0.5, 1 and 2 times the
isotropic choice. The posteriors of every kernel tried are averaged with weights proportional
to their marginal likelihoods (Bayesian model averaging with a flat prior over the grid; the
variance includes their spread), which is a few percent more accurate than keeping the best.
Beyond 256 pairs the grid is searched on 256 evenly spaced pairs and only the kernels that
search ranks best (per output 4 isotropic kernels and 2 ARD scales) are fitted on every pair:
the same errors to ~2% at 1,024-2,048 evaluations on the benchmark games for a third of the
factorisations (keeping 2 and 1 cost 20-30% more error: the average needs them).

Sign-aware kernel (``sign_kernel=True``, up to 10 pairs per player). For a saturating output
of a near-additive score, ``v = sigmoid(c + sum_j a_j s_j)``, the order-3 Walsh coefficient of
``s_i s_j s_k`` is about ``a_i a_j a_k`` times the third derivative of the sigmoid at ``c``:
once the main effects are known, so are the signs of the order-3 terms, which the ARD kernels
(variance ``~ |phi_i phi_j phi_k|``) ignore. One more kernel therefore joins the average: the
best product kernel plus the rank-one term ``rho kbar F(s) F(s')`` with
``F(s) = e_3(a * s) / sqrt(e_3(a^2))`` (``e_3`` the elementary symmetric polynomial of degree 3,
by Newton's identity; ``a`` the average's Shapley values, signs included; ``kbar`` the product
kernel's diagonal; ``rho = 10``), whose Shapley value is closed form,
``(2/3) a_i e_2(a without i) / sqrt(e_3(a^2))``. Its posterior variance is floored at its
product kernel's (``a`` comes from the same pairs; without the floor, coverage within 2 sd fell
from 0.91-0.97 to 0.83-0.89 on the breast-cancer logistic and wine games at some budgets).
Measured (benchmarks/bench_shapley_accuracy.py, 10 points, seed 0; chosen on wine, diabetes
and tanh16): the error x0.76, 0.79, 0.95 on wine at 64, 128, 256 evaluations, within 1% on
diabetes and tanh16; on the held-out games x0.78 on digits16 at 64, x0.83, 0.72, 0.93 on the
breast-cancer logistic regression at 64-256, x0.93, 0.91, 0.96 on the breast-cancer MLP logit
at 128-512, within 1% on relu14 and mlp20; worst x1.043 (breast-cancer logistic at 512) and
x1.03 (digits16 at 128); geometric mean over the 8 games x 6 budgets x0.967. Beyond 10 pairs
per player it is left out: there the product kernels resolve the order-3 terms themselves and
the marginal likelihood, which cannot see that ``a`` was fitted to the same pairs, over-weights
it (wine at 512: x1.057; with any cut between 10 and 19 pairs per player no cell is worse than
x1.043).
Tried with it and not kept: orders 1, 3, 5 or 3, 5 in the rank-one term instead of 3 alone
(wine at 64: x0.82 and x0.78 against x0.76; diabetes at 64 up to x1.17); an ANOVA prior with
its own variance per odd order (``k = sum_r sigma_r^2 e_r(s * s')``, isotropic): even with each
game's true per-order variances (an oracle) it was x1.12-1.42 on wine, x1.01-1.03 on diabetes
and x0.91-0.99 on tanh16 at 64-256 evaluations against the current average, so per-player
scales matter more than the per-order profile, and it was not built.

Design (default ``allocation="optimal"``): with the hyperparameters fixed, the posterior
variance of the Shapley values does not depend on the observed values, so the pairs can be
chosen before any model call to minimise it — greedily, A-optimal under the isotropic kernel at
``Lambda = 6``, ``tau = 10``, from a pool of pairs sampled as KernelSHAP samples them
(:mod:`tribute.methods._gp_design`; the batch form of ShaplEIG, Rundel et al. 2026). On the
benchmark games this cut the error by 20-45% at 64-2,048 evaluations against the earlier
sampled design, also on the two games added afterwards and never tuned on. The posterior stays
exact (the design ignores the observations), but where the design takes a large share of all
pairs its standard errors came out too small, so beyond 40% of the ``2^(n-1) - 1`` pairs, and
beyond ``max_pairs`` (the regression adjustment needs a random design), the sampled design
runs: all ``n`` singleton pairs ``({i}, N minus {i})`` first (they pin down the main effects),
the rest stratified by size with the Shapley-kernel allocation, as KernelSHAP.
``attr.params["design"]`` says which ran.

Tried for issue #14 and not kept (benchmarks/bench_shapley_accuracy.py games, 10 points):
a ProxySHAP-style correction of the GP surrogate (Witter et al. 2025; Fumagalli et al.,
shapiq's ``ProxySHAP``/``RegressionMSR``) by paired KernelSHAP on the residuals of cross-fitted
halves was 10-60% *less* accurate at 64-256 evaluations on all five tuning games (each half's
GP is a worse surrogate, and the GP already interpolates what it sees); the leverage-score
allocation (Musco & Witter 2025) as a sampled design, and the Shapley-kernel allocation without
singletons first, were mixed (better on some games and budgets, up to 2x worse on others at 64);
choosing the kernel per point by the truth (an oracle for any model-selection rule over the
grid) would have gained only 10-25% over the marginal-likelihood average.
Tried in the second round (wine, diabetes, tanh16 at 64-256 evaluations, 10 points x 2 seeds)
and not kept either: an adaptive re-design — 30% or 50% of the pairs from the optimal design,
the kernel fitted on them by marginal likelihood, the remaining pairs chosen A-optimally under
the fitted (ARD) kernel, which keeps the posterior exact since the design depends on the
observations only through the fit — was within 0.91-1.10x of the fixed design's error, with a
geometric mean of ~1.0 (the greedy's objective barely depends on the kernel it is computed
under); tempering the model average (weights ``softmax(loglik / T)``, ``T`` = 2, 4) changed
the error by 0-3%. Pooling the marginal likelihood across the points of one call was not tried:
it would make one point's values depend on the other points explained with it (the
conformance suite requires a batch to equal its points explained one at a time).

NNGP kernels at small budgets (third round; 10 points x 2 seeds; chosen on wine, diabetes,
tanh16 and mlp20, checked on the four other benchmark games, the four games of the previous
round and four built afterwards). Below 2.5 pairs per player the marginal likelihood gives the
NNGP member (see ``nngp``) 0.8-1.0 of the weight on most points, also where it is the worse
family (breast-cancer MLP logit and digits at 64 evaluations), and nothing that reweighs it by
likelihood helped there: a prior weight ``w`` on it (0.5 down to 0.01) left those cells at
x1.05-1.16 of the error without it, tempering the two families' evidence (``T`` = 3, 10, 30)
at x1.02-1.14, narrower NNGP grids (by activation, depth, ``sw2``, ``sb2``; the best on the
tuning games) at x1.03-1.4. A fixed share of the average, whatever the likelihoods, held up
on the benchmark: at 1/2, x0.84-0.91 on the three tuning cells it reaches and x0.88-1.00 on
the held-out ones (1/4 gained less; 3/4 cost x1.10-1.15 on digits and the breast-cancer
logistic regression); but a fixed share breaks the exact recovery of additive games (a linear
model at 2.4 pairs per player: errors ~3e-4 instead of ~1e-8), so what the default does is
cap the member's weight at 1/2 (``nngp_cap``; from 1 pair per player): the likelihood may
still lower it. The cap keeps most of the gain where the member was the better family (tanh16,
mlp20, relu14 at 64 evaluations: x0.86, 0.91, 0.90) and less where a fixed half share had
raised it (wine x1.00 instead of x0.88, breast-cancer logistic regression at 64 x0.99 instead
of x0.88); the 20 other benchmark cells are unchanged bit for bit (figures in GPShapley).
Also tried for the design at 64 evaluations: its kernel's ``Lambda`` at 1.5, 3, 12, 24 instead
of 6 (no consistent gain: x0.85-1.98 by game, the fixed 6 best or near on three of four tuning
games) and its main-effect weight ``tau`` at 0.3-3 instead of 10. ``tau = 1`` switches the
greedy to all ``n`` singleton pairs first (at 31 pairs of 16-30 players ``tau = 10`` takes 0-8
of them): with the half share, x0.90 / 0.89 on tanh16 / mlp20 and x1.00 on wine over 6 seeds
(x1.057 on wine over the protocol's 2 seeds), x0.40-0.59 on three logistic regressions, but
x1.35 on the breast-cancer MLP logit (x1.58 without the NNGP kernels, 6 seeds): which family of
pairs wins depends on the game, the design is chosen before any value is seen, and it was not
kept.

A mixed design below 3.5 pairs per player (fourth round; 10 points x 2 seeds, chosen on wine,
diabetes, tanh16 and mlp20 over 4 seeds, checked on the four other benchmark games, the eight
games of the two previous rounds and three built before the rule was chosen). Choosing the
design family from data failed: a pilot of the default design's first quarter of picks, the
isotropic grid fitted on it, and each design's posterior trace of ``Var(phi)`` averaged over
the kernels with their fitted weights picked the singletons design on every point of every
tuning game (on 8 values of 13-20 players the grid's weights were flat, 0.05-0.08 each of 15),
and the even half of the pilot's pairs (``sum (e - e0)^2 / sum d^2``, which is 0.002-0.14 on
the breast-cancer MLP logit, where the singletons lose on every point, x1.07-4.7) overlapped the
tuning games' points (0.009-4.4) and did not order their gains (per-point x0.5-1.5 with no
trend). What is kept is a fixed mix that never sees the values (``singletons_after``): the
first quarter of the pairs are the default design's first greedy picks (middle sizes), the
rest are picked greedily under the design prior with no main-effect term (``tau = 0``), which
takes all ``n`` singleton pairs next; only where those quarter and the ``n`` singletons fit
(so not at 31 pairs of 30 players, where the singletons cost the breast-cancer MLP logit
x1.94) and below 3.5 pairs per player. Tuning cells, 4 seeds: wine@64 x0.96, diabetes@64 x0.94,
tanh16@64 x0.94, mlp20@64 x0.92, mlp20@128 x0.86 (an eighth instead of a quarter: x0.91, 1.03,
0.91, 0.91, 0.87; three eighths: 0.95, 0.94, 0.89, -, -). Figures in GPShapley's
``singletons_after``.

The cells at 256-512 evaluations (fifth round, diagnosis only; mlp20 logit and breast-cancer
MLP logit, 6-13 and 4-8.5 pairs per player, 10 points x 2 seeds, each fit replayed on the pairs
of real calls): the error is not the prior's shrinkage of main effects (slope of the estimate on
the truth 0.99-1.04 per point; 2-7% of the squared error lies along the truth) and sits on the
small players (the three largest carry 4-16% of it against 53-79% of the squared truth). On
mlp20 it is the design's variance (the two seeds' error vectors correlate at 0.17 and -0.07 per
point); on the breast-cancer logit about 40% of it is common to both seeds (0.34 and 0.47), a
bias of the prior. The NNGP member carries the average there (without it x1.06-1.22), so the
product kernels' grid barely counts: ``Lambda`` up to 24 or 48 and ARD factors 0.25-4 moved
the errors by at most 2% (x0.98 on the breast-cancer logit at 512); ``tau = 100`` added to the
isotropic grid gained x0.96 and x0.89 on the breast-cancer logit at 256 and 512 (a held-out
game, seen first) and nothing on the tuning games (x1.000 on all 9 cells at 128-512: no signal
to choose it on), ``tau = 1`` within 1% everywhere; neither brings a cell to half the best
anchor (breast-cancer logit at 512: 0.573 -> 0.511), so neither was kept; an ARD NNGP family
(first-layer variances ~ ``|phi_j / (x_j - b_j)|^p``, ``p`` = 1, 2, fitted from the product
kernels' values) was x0.96-1.02 on wine, diabetes and tanh16 but x1.05-1.09 on mlp20 at 128.
The design, real calls: a candidate pool of 32 instead of 16 per pair gained x0.945 / 0.99 on
mlp20 at 512 / 256 but cost x1.10-1.12 on tanh16 and x1.095 on wine at 256, and on the
breast-cancer logit (30 players) x1.08 at 256 and x1.20 at 512, where the greedy's larger
price made the cost rule leave the NNGP member out; the design prior's ``Lambda`` at 3 or 12
instead of 6 was x0.90 / 1.02 on mlp20 at 512 and x1.09 / 1.04 at 256. The standard errors
there are about twice the error (root mean square of error / stderr 0.45-0.73; 99-100% within
2 sd).

Sixth round (no change kept; 10 points x 2 seeds, real calls). ``tau = 100`` in the isotropic
grid from 2.5 pairs per player up to 256 pairs, decided on four fresh logit games built for it
(random ReLU 18 -> 64 -> 64 -> 3, random tanh 20 -> 48 -> 48 -> 3 and 32 -> 64 -> 64 -> 2, an
MLP on 4 x 4 scikit-learn digits; 64-512 evaluations): x1.000 on 9 of the 11 cells it
reaches, x1.003 and x0.990 on the digits MLP at 256 / 512; on the 32 benchmark cells x0.956 /
0.891 on the breast-cancer MLP logit at 256 / 512 (0.572 -> 0.546, 0.573 -> 0.510 of the best
anchor), x1.018 on diabetes at 128 (x1.040 on one seed), x1.000-1.005 elsewhere: no cell
reaches half the best anchor and the fresh games show nothing, so it was not kept. At 64
evaluations of 30 players (31 pairs) the best anchor is SHAP's antithetic permutation sampler,
which is a design of nested complementary pairs (the prefixes of one permutation and their
complements) with ``phi_{pi_k} = (d_k - d_{k-1}) / 2``: that chain as the design gave the GP
x1.74 the error of the optimal design on the breast-cancer MLP logit (0.127 against 0.073;
the permutation estimate on the same pairs 0.095) and x1.12 on the breast-cancer logistic
regression; the fit (NNGP member off or uncapped, no sign-aware or ARD kernels, ``tau`` grids,
the best kernel alone) moved both cells by x0.93-1.22, never to the x0.77 / 0.83 they need. A
design prior with a weaker main-effect term (``tau`` = 1 or 0: all 30 singleton pairs first)
halves the logistic regression's error (x0.55 / 0.58: 0.278 -> 0.152) but costs x1.45 / 1.71
on the breast-cancer MLP logit and x1.13 / 1.30 on the fresh 32-player tanh logit at 64, and
nothing seen before the design tells those games apart: not the output kind either (``tau = 1``
on three more probability games at 64 evaluations of 30-32 players, a random ReLU network, a
logistic regression on 32 synthetic features and the breast-cancer MLP's probability: x1.18,
x1.29, x1.45). Measured on the way: the NNGP
member's Shapley values are sampled on 8,192 coalitions beyond 13 players, and that sampling
is ~3% of the squared error on the mlp20 logit at 512 (one point set, 4 sample seeds: 0.0254
-> 0.0251 with 32,768 coalitions, 0.0250-0.0257 -> 0.0250-0.0252, at 3x the CPU of the
fit); the cost rule leaves the NNGP kernels out at 512 evaluations of 32 players (predicted
2.07 s per output against a 2 s floor; measured 0.49 s), where they would cut the fresh tanh
logit's error from 0.0614 to 0.0462. Eighth round: the member is priced by what runs
(:func:`_nngp_flops`: its tables do not grow with the players, and about 8 of the 32 kernels
pay them), so auto now runs it there (0.0614 -> 0.0462, ratio to the best anchor 0.675 ->
0.508) and up to 176 players at 512 evaluations (was 30) and 127 at 256 (was 66); on three games built after
that rule (random tanh 40 probability, an MLP on 8 x 8 digits' logit, random ReLU 100 logit;
10 points x 2 seeds) the error fell x0.83, x0.86, x0.95 (256) and x0.84 (512), at 0.6-1.4 s
of CPU per output instead of 0.03-0.05. No cell of the benchmark below 32 players changes.

Ninth round (stop 28; real calls, 10 points x 2 seeds, every cell at 1-2.5 pairs per player of
the benchmark's twelve games, and the stop-27 guard games, held out, at 48-256 evaluations).
The lead was to model-average the members at 1-2 pairs per player rather than pick one; they are
averaged already (weights proportional to the marginal likelihoods; the NNGP grid inside its
member too), and the weights are not one-hot there: 1.9, 3.3 and 9.9 effective members (``1 /
sum w^2``) on the breast-cancer logistic regression, the breast-cancer MLP logit and the fresh
tanh32 logit at 64 evaluations. What any reweighing can reach is bounded by the members
themselves: the best member per point, chosen by the truth (an oracle), 0.221 / 0.068 / 0.294
against the average's 0.278 / 0.073 / 0.313; equal weights 0.377 / 0.122 / 0.329. Tried and not
kept: the NNGP member weighed by its likelihood alone (no cap, the average across families
as Bayesian model averaging has it): x0.91-0.97 on six cells at 64 evaluations (tanh16, mlp20,
relu14, the ReLU 18 and tanh 20 logits, the digits MLP logit) and tanh32 at 128, but x1.09 on
the breast-cancer MLP logit at 64, x1.24 on the digits logistic regression at 64, x1.02 / 1.05
on the breast-cancer logistic regression at 64 / 128 (round 3's finding again); the ARD stage
scaled from the isotropic members' average instead of the best isotropic kernel's values:
x0.98-1.004 on every cell (no signal). Kept: the NNGP member also below one pair per player
(``nngp_from``; the cells it reaches in GPShapley), where it never ran: fewer pairs than
players cannot pin every main effect, so the prior carries more of the estimate there, and a
prior shaped like the network was the better one on every cell it reached.

Stop 38 (the fit at 64-128 evaluations; no change kept). Each real call's fit was replayed on its
own pairs (10 points x 3 seeds, all twelve benchmark games at 64 and 128 evaluations; replays equal
the calls bit for bit), so a rule of the model average is measured without new model calls. What any
reweighting of the members can reach is bounded by the best member per point (chosen by the
truth): 0.063 against 0.076 on the breast-cancer MLP logit at 64 evaluations (half the best anchor
is 0.057), 0.071 against 0.072 on the random ReLU 18 logit at 128 (0.060 needed; there the NNGP
member holds 0.96 of the weight, and its best single kernel by the truth, a depth-3 grid included,
is 0.074 on seed 0). Rules tried, error against the current average (90% bootstrap): the six
families (isotropic ``tau`` = 0 / 10 / 1e6, ARD, sign-aware, NNGP) with equal prior mass:
x0.964-0.997 on the tuning games at 64, x0.94-0.99 on nine held-out cells, but x1.038
[1.006, 1.070] on the breast-cancer MLP logit at 64; the NNGP cap at 0.6 / 0.75 / 1 instead of 1/2:
the same pattern (tanh16 x0.985 / 0.969 / 0.957, digits16 x1.025 / 1.079 / 1.203); the weights
sharpened (``softmax(2 loglik)``): x0.985-0.994 on the tuning games, x1.045 [1.010, 1.083] on the
breast-cancer logit; tempered (``T = 2``): x1.00-1.05 almost everywhere; a noise floor (jitter
1e-2 of the mean diagonal): diabetes x1.17-1.37; 1e-3: x0.99-1.02. Every rule that moves weight
towards the NNGP member costs the breast-cancer MLP logit at 64, the cell furthest from the goal.
Cross-validated family weights (same replays; no change kept): the leave-one-out predictive
density of the pair differences (Rasmussen & Williams 2006, sec. 5.4.2, from each member's
Cholesky; the NNGP member as its grid's likelihood-weighted mixture) ranks the families by how
well they predict held-out differences, and that is not how well they recover the Shapley
values: it gives the ``tau = 1e6`` family 0.5-1.0 of the weight on 20 of 24 cells, where it is among
the worst families. Family weights ``softmax(LOO)`` or stacked (Yao et al. 2018): x0.91-0.93 on
the breast-cancer MLP logit at 64, x1.04-3.1 on every other cell (digits16 x2.6-3.1);
10% / 25% stacking mixed into the evidence weights of the non-NNGP families (the NNGP member keeps
its capped weight): x0.99 / 0.975 on that cell and x0.956 / 0.90 on the random tanh-20 logit at
64, but digits16 at 64 x1.046 [1.024, 1.081] / x1.13 [1.07, 1.23]; lifting the NNGP cap where its
LOO beats every other family's acts on almost no column (x1.000-1.019).
Stop 39 (new members, same replays, 3 seeds x 10 points; no change kept). The test applied first:
does the member, added to the pool, lower the best member per point (chosen by the truth) below
half the best anchor? On the breast-cancer MLP logit at 64 that bound is now 0.063 (0.057 needed);
on the ReLU 18 logit at 128 it is 0.071 (0.060 needed). No candidate passed. Each figure below is
alone / bound on the two cells.
An ARD product kernel with ``lambda_j`` proportional to the input deltas ``(x_j - b_j)^2`` (or
``|x_j - b_j|``), at 0.5, 1 and 2 times the isotropic scale: 0.074 / 0.063 and 0.075 / 0.070.
An ARD ANOVA kernel of orders 1 and 3 only, per-player weights ``|phi_j|`` of the isotropic fit:
0.103 / 0.063 and 0.085 / 0.0705. The likelihood gives it 0.9995 of the weight on the breast-cancer
logit (error x1.36 there).
The NNGP kernels with a per-feature first-layer variance proportional to ``(phi_j / (x_j - b_j))^2``:
0.078 / 0.063 and 0.092 / 0.071. With the variance proportional to ``1 / (x_j - b_j)^2``: 0.076 / 0.063
and 0.085 / 0.071.
On the ReLU 18 logit (all ``2^18`` coalitions enumerated) 96% of the odd part's energy is of
order 1 and 3% of order 3. Most of the Shapley error lies in the main effects: 0.06-0.14 of
``|phi|`` per point. The order-3 to order-7 contributions are hardly recovered: their errors are as
large as the contributions themselves.
A GP whose prior variances are the truth's own squared Walsh coefficients reaches only 0.062 on
the same pairs. That prior is the best any kernel diagonal in the Walsh basis (product, ARD, ANOVA)
could hope for, since it knows each coefficient's size. With one variance per order it reaches
0.084. So no such member can be expected to close this cell.

Stop 40 (more information per evaluation; oracle screens on the same replays, no change kept).
The other outputs a model returns with each row carry nothing the fit can use there: the
breast-cancer MLP's second logit is an affine image of the target's on the pairs (R^2 0.998),
and a separable multi-output prior ``B (x) k`` cannot move the point estimate at all (noise-free
observations of every output at the same coalitions: the posterior mean of one output depends
on its own values only, "autokrigeability"); on the ReLU 18 logit a per-order coregionalisation
fitted to the truth's own Walsh coefficients (an LMC oracle) gave 0.0566 against 0.0563 for the
target alone (seed 0, point 0). Pooling the members' weights over outputs is bounded by the best
convex combination of the members chosen by the truth: 0.065 on the breast-cancer logit at 64
and 0.062 on the ReLU 18 logit at 128 (5 points, seed 0), above the need. Gradients do carry
information: the model's derivative at both rows of a pair, ``(dv/ds_k(s) + dv/ds_k(-s)) / 2``,
observes the odd part's multilinear derivative ``s_k (o(s) - o(s^k)) / 2`` (``s^k``: ``k``
flipped) with noise, 7-13% relative on the breast-cancer logit but 34-53% on the ReLU 18 logit
(local slopes, not the edge's difference). In a product-kernel GP with those rows as noisy
linear observations (oracle over 15 kernels x 3 noise levels; 5 points x 3 seeds on the
breast-cancer logit, 5 points of seed 0 on the ReLU 18 logit), one gradient pair at
``(N, {})`` in place of the last pair took the breast-cancer logit at 64 from 0.075 to 0.059
against the current average's 0.084 (x0.70; the need is x0.746, the best convex combination of
today's members 0.066; the marginal-likelihood average over kernels and noise, 4 points of seed 1:
0.080 -> 0.058) and did nothing on the ReLU 18 logit at 128 (0.0725 -> 0.0731, current 0.064).
Half the pairs, each with its two gradient rows (the same count if a gradient row costs one more
evaluation): 0.038 on the breast-cancer logit (x0.45) but 0.087 on the ReLU 18 logit (x1.35).
With product kernels, gradients pass the oracle test on one cell only, so no rule was chosen.
Building it needs a backward pass, a design rule and the NNGP member's derivative kernel.
Stop 41 (the gradient pair in every member; same replays, not built). The model's input
gradients at ``x`` and at the baseline observe ``d``'s derivative at the full coalition,
``g_k = (x_k - b_k) / 2 (f_k(x) + f_k(b))``; in place of the last design pair they entered every
member of the real average as linear observations: the product kernels (isotropic, ARD,
sign-aware: multilinear in the codes, so their derivative is the flip difference) and each NNGP
kernel through its own derivative in the continuous code (central difference), noise on the
gradient rows by marginal likelihood per kernel (1e-6 to 100 times their mean prior variance),
members weighted and capped as here. Error against the current average (paired bootstrap, 90%;
all 24 cells, 3 seeds x 10 points): large gains at few pairs per player (breast-cancer MLP
logit at 64 x0.84 [0.75, 0.95], 0.671 -> 0.565 of the best anchor; breast-cancer logistic
regression at 64 x0.22; tanh32 logit x0.55 / 0.91 at 64 / 128; tanh20
logit at 64 x0.80; wine at 64 x0.93), nothing on the ReLU 18 logit at 128 (x1.00 [0.99, 1.01];
the NNGP member holds all the weight), losses from about 3 pairs per player (diabetes at 128
x1.08 [1.06, 1.11], digits16 x1.11, tanh16 x1.05, mlp20 and wine x1.03 at 128). A free gradient
pair (no pair dropped) still cost x1.01 / 1.04 on diabetes / tanh16 at 128: there the pairs pin
the main effects better than local slopes do. The NNGP's gradient rows as noisy flip differences
(as the product kernels') lost the gain (breast-cancer logit at 64 x1.10). Even restricted to
below 2.5 pairs per player (the NNGP threshold, not re-tuned) three cells lost 2-4% (relu14 and
digits16 at 64 x1.04 / 1.03, breast-cancer MLP logit at 128 x1.02; each interval above 1: the
pair given up is worth more than the gradients there, which alone gain x1.00 / 0.99), while cells
within half the best anchor would go from 17 to 20 of 24 (breast-cancer logit at 64 stays at
0.565); so it was not built.
Stop 42 (the even half of the pairs in the NNGP member; real calls, 10 points x 2 seeds, all 12
games at 64 and 128 evaluations, paired against the default, 90% bootstrap over points and seeds;
not built). A pair's two rows are seen only through their difference ``d``; the product kernels
are symmetric under ``s -> -s``, so the even half ``e = v(z) + v(1 - z)`` is independent of the
odd part under their prior and cannot move their mean, but the NNGP prior of ``f(b + z (x - b))``
is not (``z -> 1 - z`` is a reflection of the inputs about ``(x + b) / 2``; for a quadratic ``f``
the even half's order-2 coefficients determine the odd part). Screen first (NNGP grid alone,
likelihood-weighted, on its own A-optimal design): conditioning on all ``2K`` values (a constant
of 10x the mean diagonal for the unknown mean, each grid kernel weighed by the likelihood of
every value) took the member from 0.082 to 0.072 on the breast-cancer MLP logit at 64 (5 points)
and 0.062 to 0.059 on the ReLU 18 logit at 128 (3 points). In the real average (member's evidence
against the product kernels unchanged, capped as before; its variance the odd-only one): x0.956
[0.932, 0.976] on the breast-cancer logit at 64 (ratio to the best anchor 0.565-0.598 ->
0.54-0.57), x0.983 [0.963, 1.000] on the ReLU 18 logit at 128, x0.96-0.98 on tanh16 and the ReLU 18
logit at 64, tanh20 and tanh32 at 128, but x1.043 [0.995, 1.141] on the breast-cancer logistic
regression at 128, x1.019 [1.000, 1.037] on tanh16 at 128 and x1.004 [1.001, 1.008] on the
digits MLP logit at 64 (geometric mean over the 24 cells x0.991). Seeds 2-3 on six cells: the
logistic regression at 128 lost again (x1.033 [1.000, 1.103]; 4 seeds x1.038 [0.998, 1.116]),
tanh16 at 128 did not (x0.982; 4 seeds x0.999), the breast-cancer logit at 64 x0.958 (4 seeds
x0.957 [0.931, 0.980]), the ReLU 18 logit at 128 x0.983 (4 seeds [0.967, 0.999]). The even
half in the mean only (grid weighed by ``d``): x0.989 / 0.983 on the two cells; the joint weights
with the mean from ``d`` only: x0.956 / 1.003 and the same losses (x1.039, 1.010): on the breast-cancer logit
the gain is the grid's weighting, on the ReLU 18 logit the conditioning. Also measured: the mixed
design at the ReLU 18 logit's 3.5 pairs per player (threshold 4 instead of 3.5): x1.031 [0.929,
1.131]. Neither stubborn cell comes near half the best anchor (x0.84-0.93 needed).
Stop 43 (the design under the NNGP prior; a screen on real calls, not built). The NNGP kernel
depends on ``x`` and the baseline only, so an A-optimal design under it is still chosen before
any model call (per point, from the same candidate pool and generator draws as the default): the
greedy of :mod:`._gp_design` on an equal mixture of four grid kernels (erf and ReLU, depth 1 and
2, ``sw2`` 2 / 8, ``sb2`` 1, each normalised by its mean diagonal; ``Cov(phi, d)`` through the
member's Shapley map on 512 sampled coalitions), alone ("nngp") or half and half with the design's
isotropic prior ("half"). Seed 0, points 0-2 (stopped to give the benchmark the CPU): on the
breast-cancer MLP logit at 64 evaluations, where the design decides most (31 pairs of 30 players),
0.054 / 0.146 / 0.101 -> nngp 0.129 / 0.125 / 0.187 (mean x1.47), half 0.117 / 0.079 / 0.115
(x1.04); on the ReLU 18 logit at 128, 0.056 / 0.054 / 0.063 -> half 0.040 / 0.071 / 0.065
(x1.02), nngp 0.048 / 0.050 on points 0-1 (x0.89; two points: a lead, not a finding). The design
then costs 40-70 s of CPU per point on a loaded machine (the NNGP columns of 2,049 candidates).
Measured side by side with shapiq 1.8 at last (stop 43; 10 points x 2 seeds, 64-512 evaluations,
SHAP and shapiq's six approximators, Captum left out for time): 33 of 48 cells within half the best
anchor. shapiq's LeverageSHAP is the best anchor on 24 cells, OddSHAP on 17. The breast-cancer MLP
logit misses at every budget (0.683, 0.599, 0.584, 0.609 at 64-512); so do the ReLU 18 logit at
64-256 (0.519, 0.574, 0.544), the tanh32 logit at 128-512 (0.536, 0.558, 0.509), and five cells
at 64 or 256 evaluations (breast-cancer logistic regression at 64 0.689, digits MLP logit 0.533,
tanh20 logit 0.508, diabetes 0.502, mlp20 at 256 0.503).
Stop 44 (two screens aimed at the breast-cancer MLP logit and the ReLU 18 logit; no change
kept). The default reproduces stop 43's errors bit for bit on all 28 cells rerun (24 at 64-128,
the two games at 256-512), and Captum's two samplers, measured at last on the eight games with a
miss, are the best anchor in one cell only (tanh32 logit at 64: 0.597 against shapiq's KernelSHAP
0.616, ratio 0.473 -> 0.488; still 33 of 48 cells within half) and far from it on the two games
aimed at (breast-cancer logit at 64-512: 0.154 / 0.109 / 0.073 / 0.045 against SHAP's
permutation sampler's 0.113 and LeverageSHAP's 0.072 / 0.044 / 0.025; ReLU 18 logit 0.37 / 0.25 /
0.16 / 0.12 against 0.245 / 0.122 / 0.075 / 0.047). (1) A sum-kernel member: per column the
three NNGP grid kernels of highest marginal likelihood, each added to the best product kernel
(both normalised by their mean diagonals) as ``a k_nngp + (1 - a) k_prod`` with ``a`` in {0.1,
0.3, 0.5, 0.7, 0.9}, amplitude profiled, the 15 kernels averaged by likelihood (their
``logsumexp`` the member's evidence), the NNGP part's Shapley values on the member's coalition
sample and the product part's closed form; replayed on the pairs of real calls (10 points x 2
seeds, point estimates only, paired 90% bootstrap). Added as one more member weighed by its
likelihood: x0.922 [0.833, 0.984] on the breast-cancer logit at 64 (0.0771 -> 0.0710, ratio to
the best anchor 0.683 -> 0.63, still a miss) but x1.047 [1.010, 1.094] there at 128, x1.036
[1.007, 1.083] on the breast-cancer logistic regression at 64, x1.008 / 0.998 on the ReLU 18
logit at 64 / 128 and x1.007 on the tanh32 logit at 64; with the NNGP member's cap applied to it
as well, x0.98-1.015 everywhere (x1.012 on the breast-cancer logit at 128). The best member per
point chosen by the truth (stop 39's test) hardly moves with it in the pool (breast-cancer logit
at 64 0.0616 -> 0.0614, at 128 0.0345 -> 0.0345; ReLU 18 logit at 128 0.0684 -> 0.0677): the sum
is rarely better than both its parts. (2) The design's greedy under an ARD prior from the input
deltas, which are known before any model call (per point ``lambda_j = 6 w_j`` and main-effect
term ``10 sum_j w_j s_j s'_j``, ``w`` proportional to ``(x_j - b_j)^2`` or half that and half
``1 / n``, or ``|x_j - b_j|`` half and half; the same candidate pool; with ``w = 1 / n`` the
plain greedy picks exactly the default's pairs; real calls, one point each, 10 points x 2 seeds).
``|x_j - b_j|`` correlates with ``|phi_j|`` at 0.52-0.82 per point on the twelve games (0.73 on
the breast-cancer logit, 0.72 on the ReLU 18 logit), yet on the breast-cancer logit at 64 the
three priors cost x1.65 [1.34, 2.08], x1.31 [1.03, 1.63] and x1.54 [1.18, 1.93] (0.0771 ->
0.127, 0.101, 0.119), and the half-and-half ``(x_j - b_j)^2`` prior gave x0.964 [0.829, 1.137]
on the ReLU 18 logit at 128 (x0.891 / 1.046 by seed): with 31 pairs for 30 players the design
must spread over every player, and a prior that concentrates the pairs on the large deltas
leaves the rest to the fit's prior (as the singleton and permutation-chain designs before it,
the breast-cancer logit punishes every departure from the isotropic greedy).
Stop 45 (a prior from the model's own first layer; ``nngp_first_layer``, opt-in, off by default).
Where the model is a ``torch.nn.Sequential`` whose first module is a ``torch.nn.Linear`` on the
players' input, the NNGP kernels' first-layer weight covariance ``sw2 / n * I`` can be ``sw2 / n *
G`` with ``G = W' W`` of that layer (mean diagonal one): a prior shaped by the weights, read
without a model call, so budgets and the design are unchanged and each point's values depend on
that point only. Replayed on the pairs of stop 44's real calls (10 points x 2 seeds, the library's
code, paired 90% bootstrap over points and seeds; with ``G = I`` the replays equal the calls bit
for bit) it lowered the error on every one of the 28 cells measured (64-128 evaluations on all
twelve games, 256-512 on the breast-cancer MLP logit and the ReLU 18 logit; every seed lower,
geometric mean x0.845): the breast-cancer MLP logit x0.915 [0.868, 0.966] / 0.851 [0.812, 0.898] /
0.679 [0.626, 0.726] / 0.679 [0.627, 0.734] at 64 / 128 / 256 / 512 evaluations (ratio to the best
anchor 0.683 / 0.599 / 0.584 / 0.609 -> about 0.63 / 0.51 / 0.40 / 0.41), the breast-cancer
logistic regression x0.496 / 0.517 at 64 / 128 (0.689 -> about 0.34 at 64), the digits logistic
regression x0.66 / 0.46, the digits MLP logit x0.92 / 0.79, diabetes x0.94 / 0.95, the tanh32 logit
x0.953 / 0.941 (0.536 -> about 0.50 at 128), the ReLU 18 logit x0.990 / 0.984 / 0.969 / 0.967 at
64-512 (0.519 / 0.574 / 0.544 -> about 0.51 / 0.56 / 0.53: still misses), the tanh20 logit x0.94 /
0.92 (0.508 -> about 0.48 at 64), relu14 x0.95 / 0.91, tanh16 x0.92 / 0.95, mlp20 x0.98 / 0.97,
wine x0.996 / 0.993; cells within half the best anchor 33 -> about 39 of 48 (the 20 cells not
replayed counted as today). The weights' directions carry it: the same spectrum in random
directions cost x1.04-1.11 on the breast-cancer logit at 64-128 (0.0778 -> 0.0811 and 0.0763 ->
0.0850 at 64, 0.0420 -> 0.0448 at 128 on seed 0). On the random networks ``G`` is near ``I``
(off-diagonal root mean square 0.12-0.13 of the diagonal), so little changes there; on the trained
MLP it is not (0.21, the top eigenvalue 21% of the trace). Lifting the cap of 1/2 on the member as
well took the breast-cancer logit to x0.86 at 64 (2 seeds) and x0.71 at 128 (seed 0), not measured
elsewhere. Coverage within 2 sd stayed at or above the default's (breast-cancer logistic regression
at 64 0.943 -> 1.000, five cells 1.000 -> 1.000; root mean square of error / stderr 0.97 -> 0.37,
0.57 -> 0.46 on the breast-cancer logit at 256: more conservative, as the member's variance is
floored at the best product kernel's). Not the default yet: the replays cover 64-128 evaluations of
all twelve games and 256-512 of two; real calls at 256-512 on the other ten, and the stderr
benchmark with it, come first. It needs a white-box model (the anchors are black-box), and leaves
any other model, a wrapped network included, on the isotropic kernels
(``attr.params["nngp_first_layer_used"]``).
Stop 46 (``nngp_first_layer=True`` made the default, after real calls on every cell). Real calls
of ``explain(..., method="shapley", nngp_first_layer=True)`` on all twelve games at 64 / 128 / 256 /
512 evaluations (10 points x 2 seeds, the points and seeds of stop 43's table), paired with the
default's calls on the same points (the default's fits replayed on this stop's captured pairs at
64-128, and five of its calls at 256-512, equal stop 43's per-point errors exactly): lower error
on all 48 cells and all 96 seed-cells (geometric mean x0.804, worst cell x0.996 on wine at 64;
39 of the 48 paired 90% intervals below 1, none above), cells within half the best anchor 33 ->
41 of 48. New cells at 256-512: digits logistic regression x0.33 / 0.53, breast-cancer logistic
regression x0.27 / 0.27, wine x0.975 / 0.84, diabetes x0.94 / 0.93, tanh16 x0.95 / 0.88, relu14
x0.93 / 0.98, mlp20 x0.97 / 0.94 (0.503 -> 0.489 at 256), the tanh20 logit x0.91 / 0.88, the
digits MLP logit x0.86 / 0.88, the tanh32 logit x0.93 / 0.93 (0.509 -> 0.471 at 512); the 64-512
cells stop 45 replayed came out as replayed (breast-cancer MLP logit x0.915 / 0.851 / 0.679 /
0.679). Still missing: the breast-cancer MLP logit at 64 / 128 (0.625 / 0.510), the ReLU 18
logit at 64 / 128 / 256 (0.513 / 0.564 / 0.527) and the tanh32 logit at 128 / 256 (0.504 /
0.520). Standard errors: coverage within 2 sd 0.961-1.000 on the nine games with enumerated
truth (the default 0.964-1.000); over all 48 cells higher in 15, lower in 7 by one or two values
of 260-640 (the ReLU 18 logit 0.964 -> 0.961 at 64, 0.992 -> 0.989 at 128, 1.000 -> 0.994 at
512; relu14 1.000 -> 0.996 at 256; mlp20 1.000 -> 0.998 at 512; the two 30-32-player reference
games at 256, 1.000 -> 0.998 and 0.997 -> 0.995); root mean square of error / stderr, measured
for both in 29 cells (64-128 on the same pairs, five cells at 256-512), 0.10-0.92 against
0.22-0.94, lower in 23 and never higher: a little more conservative. Cost: the kernels'
quadratic forms (not timed apart; calls took 7-104 s per 10 points on a busy machine, the
default's replayed fits about as long). Off with ``nngp_first_layer=False``.
Stop 47 (the member on the first layer's Gram weighed by likelihood alone below 2.5 pairs per
player; ``nngp_first_layer_cap=1.0``, the default). The cap of 1/2 (``nngp_cap``) was set for the
isotropic member, which the likelihood over-weighed where it was the worse family (rounds 3 and
9, stop 38: no cap cost x1.09-1.24 on the breast-cancer MLP logit and the digits logistic
regression at 64). On the Gram that no longer holds. The library's fit, replayed on the pairs of
stop 44's real calls (the design does not depend on the Gram or the cap, and the replays with
the cap equal stop 46's real calls bit for bit on 10 seed-cells), 10 points x 2 seeds, paired 90%
bootstrap over points and seeds: lower error on all 14 cells where the cap applies (below 2.5
pairs per player: 11 games at 64 evaluations, the breast-cancer games and the tanh32 logit at
128), none higher: the breast-cancer logistic regression x0.121 [0.105, 0.143] / x0.440 at 64 /
128 (its rank-2 Gram is nearly the model), the breast-cancer MLP logit x0.941 [0.815, 1.033] /
x0.822 [0.757, 0.886], the ReLU 18 logit at 64 x0.930 [0.894, 0.964], the tanh32 logit x0.972 /
x0.879 [0.832, 0.918], the digits MLP logit x0.84, tanh16 x0.89, relu14 x0.91, mlp20 x0.94, the
tanh20 logit x0.93, digits x0.94, wine x0.98; the 34 other cells are unchanged by construction
(checked bit for bit on the ReLU 18 logit at 128 / 256). Cells within half the best anchor 41 ->
44 of 48 (the breast-cancer MLP logit at 128 0.510 -> 0.419, the ReLU 18 logit at 64 0.513 ->
0.477, the tanh32 logit at 128 0.504 -> 0.443). Still missing: the breast-cancer MLP logit at 64
(0.588), the ReLU 18 logit at 128 / 256 (0.564 / 0.527), the tanh32 logit at 256 (0.520); the
cap does not apply to the last three. Coverage within 2 sd on the eight changed cells with
enumerated truth 0.967-1.000 (before 0.961-1.000; relu14, mlp20 and the tanh20 logit at 64 one
or two values of 280-640 lower, all above the nominal 0.954); root mean square of error /
stderr lower or equal on all 16 cells replayed. Tried and not kept: the first layer's Gram
weighted by the next layer's use of each hidden unit, ``W1' diag(sum_k W2[k, j]^2) W1`` (which
the rev46p decoy, rows the next layer ignores, asks for), on top of the uncapped member: x0.991
(geometric mean over 47 seed-cells at 64-512 evaluations, 10 games with two or more layers),
x0.935-1.017 (the breast-cancer MLP logit x0.94-0.96 at 128-512, x0.99 at 64; the digits MLP
logit and diabetes x1.00-1.017): it closes no cell.
Stop 48 (dead first-layer ReLU rows left out of the Gram; ``nngp_first_layer_live=True``, the
default). rev47p found that ``W' W`` gives full weight to ReLU rows that never fire on the box
between a point's baseline and its input: on a 10-player model with 28 of 32 rows dead the member
lost to the same function with those rows deleted (x4 the error). Row ``k`` is now left out of
point ``c``'s Gram where ``b_k + sum_i max(w_ki x_ci, w_ki base_ci) <= 0`` (every coalition's
input is a vertex of that box; exact, no model call; one Gram per point, so a point's values do
not depend on the rest of its batch). That model (enumerated truth, 3 points x seeds 0-2 x
budgets 24 / 36 / 50 / 52 / 80): x0.236-0.378 on seed 0, x0.58-0.71 and x1.016 (at 24) on seed
1, x0.40-0.71 on seed 2, and float32 the same; a ReLU model with a few rows dead on some boxes
x0.995-1.009. Benchmark (replays of stop 44's captured pairs at 64-128 and the ReLU 18 logit
at 256-512, real calls at 256-512 for the digits MLP logit, each paired with its own pairs
refitted with the shared Gram, which equal stop 46's calls bit for bit; 10 points x 2 seeds):
the digits MLP logit (23 of 64 rows dead at every point) x0.988 / 0.996 / 0.993 / 0.989 at
64-512; wine and diabetes at 64-128 and the ReLU 18 logit at 64-512 (1-6 of 10 points with 1-3
dead rows) x0.999-1.001 (wine and diabetes at 256-512 not measured); the others have no dead row at any point and are unchanged by
construction. Cells within half the best anchor stay 44 of 48: the four misses have no dead row.
Oracle for the >= 2.5 pairs-per-player misses (not built): a GP whose kernel runs through the
model's real first layer, ``h1 = relu(W1 z + b1)`` on every coalition, with random later layers
(linear in ``h1``, or one arc-cosine layer on top), on the ReLU 18 logit's pairs at 128
evaluations, seed 0: 0.0646 against the default's 0.0720 (9 of 10 points lower; the cell needs
0.0611 on two seeds). It evaluates part of the
model on ``2^n`` coalitions outside the budget, which the budget's meaning would have to allow.

Stop 51 (the paired structure as a control variate; analysis, no change to the fit). What the
pairs know exactly: the even half ``e(S) = (v(S) + v(N minus S)) / 2`` is a self-dual game, whose
Shapley value is 0 for every player (pair ``S`` with ``N minus S minus {i}``: equal weights,
opposite marginals; enumeration on 20 random 8-player games: 3e-16 of the game's largest value),
and ``v(N) - v(empty)`` (efficiency). Both are already used exactly: the fit sees only ``d``, so
the credits do not depend on the even half at all (8 players, an arbitrary even game added to a
tanh network: credits equal to 2e-13 at 15-63 pairs), and efficiency is conditioned on. No other
linear functional of the even half has a known value that bears on ``phi`` (a per-player statistic
of ``e`` must be even in the codes, since a pair's orientation is arbitrary, and the even game's
Shapley value, its only known one, is 0), so a control variate has no coefficient to estimate;
the even half can only act through a prior that couples it to the odd half, which is stop 42's
conditioning of the NNGP member on all ``2K`` values (x0.956 on the breast-cancer MLP logit at 64,
x0.983 on the ReLU 18 logit at 128, losses on three cells), short of the x0.85 / x0.89 those
cells need. That check found the ties below: at fewer pairs than players the greedy picks
mutually orthogonal codes (8 players, 5 and 7 pairs), every isotropic kernel's matrix is then
diagonal and every likelihood equal, and the arg-max over their last bits chose the ARD stage's
scales, so a 7e-15 change of the model's outputs moved the credits by 0.2 (7% of the largest);
the first kernel among tied ones is now kept (:func:`_select`).
Stop 52 (stop 42's joint conditioning re-measured on the first layer's Gram; replays of real calls'
pairs, 10 points per call, paired 90% bootstrap over points and seeds; not built). Inside the NNGP
member every grid kernel conditioned on all ``2K`` values of the pairs (``v(z)`` and ``v(1 - z)``
apart; a constant of 10x the mean diagonal for the unknown mean), its Shapley values those of the
odd part of the joint posterior mean, the grid weighted by the joint likelihood ("B") or by the
odd one ("A"); the member's evidence and variance stay the odd-only ones. Chosen on seeds 2-3:
B x0.922 [0.886, 0.961] on the breast-cancer MLP logit at 64 (A x0.943), x0.974 / 0.972 on the
ReLU 18 logit at 128 / 256, x1.004 on the tanh32 logit at 256. Held out, seeds 0-1 (the
benchmark's): x0.907 [0.873, 0.942], x0.968 [0.947, 0.987], x0.976 [0.957, 0.995], x0.987
[0.972, 1.001]; ratio to the best anchor (the same run's Captum, SHAP and shapiq 1.8) 0.588 ->
0.533, 0.564 -> 0.546, 0.527 -> 0.515, 0.520 -> 0.514: every cell still misses (x0.850 / 0.887 /
0.949 / 0.962 needed). The best single joint grid kernel per point chosen by the truth (an oracle
for any reweighing of the grid; the member alone) reaches x0.851 on the breast-cancer logit at 64
and x0.940 on the ReLU 18 logit at 128 (seed 2), so no weighting rule of this member closes the
ReLU 18 cell. Stop 42's losing cells did not lose: the breast-cancer logistic regression at 128
x1.000, tanh16 at 128 x0.985 (seeds 0-1); on 27 more cells (seed 0, or seeds 0-1, 64-512
evaluations) B was x0.77-1.01 (the breast-cancer MLP logit x0.77 / 0.87 / 0.91 at 128 / 256 / 512;
above 1 only diabetes at 64 / 256, digits16 at 64, tanh16 at 256 and the digits MLP logit at 256,
x1.003-1.016), not enough for a default without every cell and the standard errors (cost: a ``2K x 2K``
factorisation per grid kernel and two Shapley tables per kept kernel instead of one).

Standard errors. The amplitude of the prior is profiled out (its maximum-likelihood value
``y^T K^-1 y / K`` from the ``K = pairs + 1`` interpolated values), and a plug-in posterior
variance built on it is too small when ``K`` is small: under a scale-invariant prior on the
amplitude the Shapley values' posterior is Student-t with ``K`` degrees of freedom, not normal
(exact under the model, checked by simulation in the tests). Each kernel's own posterior
variance is therefore scaled by ``t_factor(K)^2`` (:func:`._stderr.t_factor`, so that two
standard errors span the same 95.4% as two normal ones: x2.73 in variance at 2 pairs, x1.30 at
9, x1.14 at 19, x1.03 at 79); the spread between the averaged kernels is added unscaled.
With at most ``n`` pairs (fewer pairs than players; and at most 256, the search subset, where
the amplitude already rests on enough values) the amplitude also looks at the even half
of the same pairs, ``v(z) + v(1 - z)``, already evaluated: the product kernel is the sum of an
odd and an even part with one amplitude, and where the even half shows a rougher game than the
odd half (a design whose few odd differences happen to cancel) the pooled amplitude raises the
standard errors — never lowers them (:func:`_even_ratio`; kernels with the odd main-effect term
``tau > 0`` are left alone). The point estimates do not change, bit for bit.
Coverage within 2 sd, before -> after (toy polynomial game of tests/stderr_calibration.py,
10 players, 50 seeds): 0.846 -> 0.973 at budget 6 (worst |err| / stderr 63 -> 5.6), 0.953 ->
0.974 at 20, 0.925 -> 0.933 at 40, 0.981 -> 0.983 at 160 (a second toy game: 0.897 -> 0.979,
0.995 -> 0.997, 0.957 -> 0.967, 0.990 -> 0.992). On the accuracy benchmark's networks
(benchmarks/bench_stderr_calibration.py ``--games``, 10 points x 5 seeds) at 64-512
evaluations, where only the t factor acts (x1.04 in stderr at 64, x1.01 at 256): 0.906-0.994
(before 0.896-0.993), mean stderr 1.1-2.7 times the mean absolute error (1.25 is calibrated
for a normal error); at 12-48 evaluations 0.885-0.989 (before 0.674-0.957: wine at 24
evaluations 0.674 -> 0.885), but conservative where the pairs are few for many players
(breast-cancer logistic regression, 30 players, at 12 evaluations: stderr 7.3 times the error,
coverage 0.989). Applied at every budget, the even half over-covered (that game at 128-256:
0.997-0.999, stderr 3-4 times the error), hence the cut at ``n`` pairs. Tried and not kept: a
leave-one-out predictive check (Rasmussen & Williams 2006, sec. 5.4.2; raise the amplitude to
the mean squared standardised LOO residual when above 1) changed coverage by <= 0.008 at
budgets 6-40 (the LOO residuals of these fits are rarely larger than predicted); a REML-like
amplitude ``y^T K^-1 y / (K - p)`` with ``p`` the effective number of near-unshrunk main
effects (``tr(tau S S^T / n K^-1)``) over-covered the second toy game (0.992 at budget 40, 0.996
at 20), and a t with ``K - p`` degrees of freedom covered 1.000 at budget 6 with a mean stderr
7 times the mean error (10 seeds).

Seventh round (standard errors at few pairs per player; values unchanged bit for bit). At 31
pairs of 32 players (a fresh random tanh 32 -> 64 -> 64 -> 2 logit, 6 seeds x 10 points) only
0.765 of the errors lay within 2 sd (|err| / stderr up to 22). Replaying the fits kernel by
kernel: the ``tau = 1e6`` members alone covered 0.2-0.8% (the main effects interpolate the
pairs, so the profiled amplitude, and the variance, go to ~0), ``tau = 10`` at small
``Lambda`` 15-42%, the ARD members 51-62% (a player whose isotropic estimate is near 0 gets
``lambda_j ~ 0``: prior and posterior variance near 0; the largest |err| / stderr sat on such
players, also through the sign-aware member's floor: breast-cancer logistic regression, 11.6),
the isotropic ``tau = 0`` members 79-97%. Up to 1.5 pairs per player no member now reports a
smaller variance than the ``tau = 0`` members' likelihood-weighted mean (:func:`_reference_floor`).
Within 2 sd, before -> after (6 seeds x 10 points): fresh tanh32 logit at 64 evaluations 0.765
-> 0.973 (max |z| 22 -> 4.0), breast-cancer logistic regression at 64 0.947 -> 0.974 (11.6 ->
3.3), breast-cancer MLP logit at 64 0.988 -> 1.000 (conservative: rms z 0.32), toy game of the
calibration tests at 20 (9 pairs of 10 players, 50 seeds) 0.974 -> 0.998; unchanged from 2 pairs
per player (fresh tanh32 at 128: 0.984). Applied at every budget it over-covered (toy game at
160: 0.998; tanh32 at 128: 0.992); a floor at 0.1-0.5 of that variance left the fresh game at
0.79-0.90.

Stop 29 (standard errors only; values unchanged bit for bit). On the stop-28 audit's game (a
tanh MLP's log-probability against a 5-row background set; 150 seeds x 3 inputs) 95% intervals
(1.96 sd) covered 0.886 at 9 players / budget 100, 0.898 at 90, 0.891 at 6 / 24 and 0.790 at
6 / 60 (29 of 31 pairs). Replaying the members: the smooth kernels (small ``Lambda``, the ARD
members at 0.5-1x) covered 0.50-0.89 and the ARD members held most of the weight. Two rules,
both only ever raising a member's variance: (1) each kernel's profiled amplitude is checked by
leave-one-out cross-validation (:func:`_loo_ratio`: the mean squared standardised LOO residual,
Rasmussen & Williams 2006 sec. 5.4.2; raised to it where larger, up to ``_LOO_ROWS`` values);
(2) the members whose kernels are fitted per player from the same pairs (ARD, sign-aware, NNGP)
never report less than the isotropic ``tau = 0`` reference (:func:`_reference_floor`) at any
budget: their conditional posteriors ignore that their per-player scales were estimated
(Kass & Steffey 1989). After: 0.927, 0.940, 0.940, 0.928; 13 players 0.933 -> 0.960 at 52,
0.957 -> 0.968 at 130. Cost: where the ARD members are far more accurate than the isotropic ones
(the toy polynomial game, 10 players at 160, 20 seeds x 8 inputs) the floor keeps the intervals
conservative: coverage 0.989 before, 0.988 after (the leave-one-out check alone: 0.977, rms
error / stderr 0.73; with the floor 0.59). Alone, (1) gave 0.853 at 6 / 60 and (2) 0.897; together 0.922 (40 seeds).

Exactness: ``v(N) - v(empty)`` is interpolated without noise, so efficiency holds (to rounding;
the last ~1e-12 is removed by conditioning on it); when the budget covers every coalition the
exact value is returned. For budgets above ``max_pairs`` pairs the GP is fitted on a subset and
its residuals on the held-out pairs are corrected by paired KernelSHAP (regression adjustment,
Witter et al. 2025; two halves cross-fitted up to ``2 * max_pairs`` pairs), which keeps the
estimator consistent at a cost linear in the budget.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn.utils.weight_norm import WeightNorm as _WeightNorm

from ..attribution import Attribution
from ..games.base import Game
from ..params import InstanceOf, Interval, Options, declare
from ._gp_design import _TIE_RTOL, design_flops, mixed_designs, optimal_pairs, pool_size
from ._shapley_common import HUGE_STRATUM, PairSampler, pair_masks, paired_wls
from ._stderr import t_factor
from .base import Cost, Method, Tags, alias, coalition_cost, register
from .exact import all_coalitions, shapley_from_table

__all__ = ["GPShapley", "gp_shapley_fit"]

#: Grids searched by marginal likelihood: the isotropic stage's total scale ``Lambda = sum_j
#: lambda_j`` and main-effect weight ``tau``; the ARD stage's scale as multiples of the
#: isotropic choice.
_ISO_GRID = (0.7, 1.5, 3.0, 6.0, 12.0)
_ARD_GRID = (0.5, 1.0, 2.0)
_MAX_LAMBDA = 30.0
_TAU_GRID: tuple[float, ...] = (0.0, 10.0, 1e6)
_ALLOCATIONS = ("optimal", "singletons", "kernel", "leverage")
_CHUNK_BYTES = 96 * 1024**2
#: The optimal design is used up to this share of all ``2^(n-1) - 1`` pairs (see _design).
_OPTIMAL_SHARE = 0.4
#: Pairs the hyperparameter grid is searched on when there are more (see gp_shapley_fit), and
#: the isotropic kernels and ARD scales per column then refitted on every pair (keeping fewer,
#: 2 and 1, raised the error at 2,048 evaluations by 20-30% on the wine and breast-cancer
#: MLPs: the model average needs them).
_SEARCH_PAIRS = 256
_KEEP_ISO = 4
_KEEP_ARD = 2
_QUAD_ELEMENTS = 4 * 1024**2
#: Weight of the sign-aware kernel's rank-one term relative to the product kernel's mean diagonal
#: (chosen on the wine, diabetes and tanh16 games at 64-256 evaluations among 0.3-1,000: the
#: errors moved by < 2% over 1-1,000; the model average sets how much it counts).
_SIGN_RHO = 10.0
#: The sign-aware kernel joins the average up to this many pairs per player: on the wine game it
#: cut the error by 5-24% at 64-256 evaluations (up to 9.8 pairs per player) and raised it by
#: 6% at 512 (19.6 per player), where the product kernels alone already resolve the order-3
#: terms and the marginal likelihood, which does not see that ``a`` was estimated from the same
#: pairs, over-weights it.
_SIGN_PAIRS_PER_PLAYER = 10
#: The NNGP kernels (``nngp``) join the average up to this many pairs (32 kernels per
#: output on the ``pairs x pairs`` matrix: beyond, their factorisations would dominate).
_NNGP_MAX_PAIRS = 256
#: ``nngp=None`` (auto) weighs them by marginal likelihood from this many pairs per player
#: on (below, see ``nngp_from`` and ``nngp_cap``): below it the marginal
#: likelihood, resting on about ``n`` values, picked the NNGP member for points where it was
#: worse (10 points x 2 seeds, error with / without: breast-cancer MLP logit x1.075 at 1.0
#: pair per player, digits logistic regression x1.163 at 1.9, breast-cancer logistic
#: regression x1.031 at 2.1, wine MLP x1.011 at 2.4; see GPShapley).
_NNGP_PAIRS_PER_PLAYER = 2.5
#: Below ``_NNGP_PAIRS_PER_PLAYER`` pairs per player, and from ``nngp_from`` pairs per player
#: (default 0: from the first pair), auto adds them with their weight capped at ``nngp_cap``
#: (0.5) of the average: there the likelihood, resting on about ``n`` values, gives the NNGP
#: member 0.8-1.0 of the weight on most points, also where it is the worse family; capped, no
#: benchmark cell lost more than 0.6% (see GPShapley's ``nngp``). A cap and not a fixed share:
#: the likelihood may still lower it, so an additive game, which the ``tau = 1e6`` product
#: kernels fit exactly, stays exact. ``nngp_from`` was 1 until the ninth round of issue #14
#: (see GPShapley's ``nngp_from``).
#: The mixed design (``singletons_after``): below this many pairs per player, the first
#: ``singletons_after`` of the pairs are the default design's first greedy picks, the rest are
#: picked greedily under the design prior with no main-effect term (``tau = _MIX_TAU``), which
#: takes every singleton pair next (see GPShapley and _gp_design.mixed_designs).
_MIX_PAIRS_PER_PLAYER = 3.5
_MIX_TAU = 0.0
#: ... and only up to this many players: the rule was measured on games of 13-30 players;
#: larger games keep the default design until it is measured there.
_MIX_MAX_PLAYERS = 32
#: Up to this many pairs per player no member of the model average reports a smaller variance
#: than the isotropic ``tau = 0`` members (:func:`_reference_floor`; beyond, only the ARD,
#: sign-aware and NNGP members are floored, see the module docstring's stop 29): there the ARD and
#: main-effect members' variances fell towards 0 (31 pairs of 32 players: 0.765 of the errors
#: within 2 sd, |err| / stderr up to 22); at 2 or more pairs per player the average was
#: calibrated without it (0.984-0.987) and the floor over-covered the toy game (0.998 at 8).
_FLOOR_PAIRS_PER_PLAYER = 1.5
#: The leave-one-out check of the amplitude (:func:`_loo_ratio`) runs up to this many values
#: (``pairs + 1``; the search subset's size): beyond, the amplitude rests on > 256 values and the
#: check would cost one more triangular inverse per kernel and output.
_LOO_ROWS = _SEARCH_PAIRS + 1


@dataclasses.dataclass(frozen=True)
class _Grid:
    """The hyperparameter search: isotropic kernels ``(Lambda, tau)``, ARD scales, the pairs the
    grid is searched on beyond which only the ``keep_iso`` / ``keep_ard`` best are refitted."""

    iso: tuple[tuple[float, float], ...]
    ard: tuple[float, ...]
    search: int
    keep_iso: int
    keep_ard: int


_FULL = _Grid(tuple((total, tau) for total in _ISO_GRID for tau in _TAU_GRID), _ARD_GRID,
              _SEARCH_PAIRS, _KEEP_ISO, _KEEP_ARD)
#: The lean search (path ``"gp-lean"``, see GPShapley): fewer isotropic kernels, one ARD scale,
#: a smaller search subset (accuracy cost measured in the module docstring).
_LEAN = _Grid(((1.5, 0.0), (1.5, 1e6), (6.0, 10.0), (6.0, 1e6)), (1.0,), 128, 2, 1)
#: The path rule (``lean=None``, see GPShapley): the estimator's predicted seconds may reach
#: ``_MODEL_MULTIPLE`` times the model's seconds for the same call, and at least
#: ``_FLOOR_SECONDS`` per explained output (sample x target): a call predicted within that
#: never changes, whatever the model costs. Predictions: ``_FLOPS_PER_SECOND`` and
#: ``_SECONDS_PER_FIT`` per factorisation (calibrated on benchmarks/bench_gp_shapley_scaling.py,
#: one thread: see GPShapley.solve_seconds).
_MODEL_MULTIPLE = 4.0
_FLOOR_SECONDS = 2.0
_FLOPS_PER_SECOND = 5e9
#: What a one-row model pass costs beyond the model (see :func:`_seconds_per_eval`).
_PASS_OVERHEAD_SECONDS = 2e-3
_SECONDS_PER_FIT = 1e-3
_SECONDS_PER_POOL_ENTRY = 4e-7


#: The NNGP member's price (:func:`_nngp_flops`): what one entry of a network-kernel table costs
#: (its four sign passes of the arc-sine / arc-cosine recursion, one or two layers; measured
#: 2.9-4.7e-8 s per entry at 13-64 players and 64-256 pairs, one thread, ~200 flops at
#: ``_FLOPS_PER_SECOND``), and how many of the grid's kernels are priced as passing
#: ``MIN_WEIGHT`` and paying the ``8,192 x K`` table: 2.0-14.3 of the 32 per output on ten
#: benchmark cells at 128-512 evaluations (3 points each; mean 6.7, the trained MLPs take the
#: most), so 8, the mean rounded up: the price is the expected cost, not a bound (with the
#: measured counts it came within 0.81-1.10x of the measured CPU in 9 of 10 cases at 13-128
#: players and 64-256 pairs; 1.59x at 20 players and 256 pairs; the trained MLPs keep up to 14:
#: mlp20 at 512 evaluations measured 1.4 s per output for the member, 1.04 s predicted for the
#: whole call).
_NNGP_ENTRY_FLOPS = 200.0
_NNGP_PRICED_KERNELS = 8


def _nngp_flops(n: int, k: int) -> float:
    """Predicted flops of the NNGP member for one explained output on ``k`` pair rows of ``n``
    players (:func:`._nngp.nngp_pass`): every kernel of the grid on the ``k x k`` pairs and its
    factorisation; the composed inputs' dot products with the surrogate's coalitions (shared by
    the grid); and, for ``_NNGP_PRICED_KERNELS`` of them (the ones that pass ``MIN_WEIGHT``;
    the count is only known after the fits), the surrogate's table on the ``ROWS`` coalitions
    (every coalition up to 13 players), the variance sample's ``VAR_ROWS x (VAR_ROWS + k)``
    tables and the ``k x n`` triangular solves. Only the dot products and the solves grow with
    ``n``: the earlier price, ``4 ROWS k n`` flops for each of the 32 kernels, was 4x too high at 32
    players and 512 evaluations (2.07 s predicted, 0.28-0.49 s measured per output) and left
    the kernels out there.
    """
    from ._nngp import GRID, ROWS, VAR_ROWS

    rows = ROWS if n >= 63 else min(ROWS, 2**n - 2)
    var_rows = max(VAR_ROWS, 2 * (n - 1)) if n >= 63 else min(max(VAR_ROWS, 2 * (n - 1)), 2**n - 2)
    fits = len(GRID) * (k**3 / 3 + _NNGP_ENTRY_FLOPS * k * k)
    dots = 2.0 * n * (rows + var_rows + k) * (k + var_rows)
    kept = min(len(GRID), _NNGP_PRICED_KERNELS)
    tables = kept * (_NNGP_ENTRY_FLOPS * (rows + 1 + var_rows) * k
                     + _NNGP_ENTRY_FLOPS * var_rows * var_rows + 3.0 * k * k * n + 2.0 * rows * k)
    return float(fits + dots + tables)


def _gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights on [0, 1] for the integrands of ``n`` players.

    Exact for polynomials of degree < n up to 44 players. Beyond, 24 nodes: the integrands are
    products ``prod_j (1 +- t c_j)`` with ``sum_j c_j <= Lambda / 2`` (at most ~30 on our grids),
    entire functions that 24 nodes integrate to ~1e-13 relative (checked against 64 nodes up to
    1,024 players, ``Lambda = 60``), at a seventh of the cost of the tensor rule's 64^2 nodes.
    Cached (numpy's eigenvalue solve took 15-25 ms of a 25-160 ms fit); callers never write to
    the returned tensors.
    """
    return _gauss_legendre_nodes(int(min(max(n // 2 + 2, 8), 24)))


@functools.lru_cache(maxsize=32)
def _gauss_legendre_nodes(q: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, w = np.polynomial.legendre.leggauss(q)
    return torch.from_numpy((x + 1) / 2), torch.from_numpy(w / 2)


def _kernel(sa: torch.Tensor, sb: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Odd product kernel, normalised: ``G x Ka x Kb`` for ``lam`` of shape ``G x n``."""
    total = lam.sum(-1)[:, None, None]
    dist = (total - (sa[None] * lam[:, None, :]) @ sb.T) / 2
    return (torch.exp(-dist) - torch.exp(-(total - dist))) / 2


def _even_products(x: torch.Tensor, lognorm: torch.Tensor) -> torch.Tensor:
    """``(prod_{j != i}(1 + x_j) + prod_{j != i}(1 - x_j)) / 2 / exp(lognorm)`` for each ``i``
    (last axis), in log space; ``lognorm`` broadcasts against ``x`` without its last axis."""
    lp, lm = torch.log1p(x), torch.log1p(-x)
    return 0.5 * (torch.exp(lp.sum(-1, keepdim=True) - lp - lognorm)
                  + torch.exp(lm.sum(-1, keepdim=True) - lm - lognorm))


def _shapley_of_kernel(s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Shapley value of ``z -> k(z, s_k) / 2`` for each row: ``G x K x n`` (``c``: ``G x n``).

    ``phi_ki = c_i s_ki int_0^1 (P+_k(t) / (1 + t c_i s_ki) + P-_k(t) / (1 - t c_i s_ki)) / 2 dt``
    with ``P+-_k(t) = prod_j (1 +- t c_j s_kj)`` (the even part of the product over ``j != i``,
    written as the full product divided by the ``i``-th factor). ``log P+-`` is a matrix product
    of ``log1p(+-t c_j)`` with the ``+-1`` codes, and the quadrature sums against
    ``w_t / (1 +- t c_i)`` are four more: ``O(G K n Q)`` multiply-adds, no per-element
    transcendentals (``Q`` Gauss–Legendre nodes).
    """
    nodes, weights = _gauss_legendre(s.shape[1])
    lognorm = torch.log1p(c).sum(-1)[:, None, None]  # G x 1 x 1
    tc = nodes[None, :, None] * c[:, None, :]  # G x Q x n
    ap, am = torch.log1p(tc), torch.log1p(-tc)
    mean = (0.5 * (ap + am)).sum(-1)[..., None]  # G x Q x 1
    half = 0.5 * (ap - am) @ s.T  # G x Q x K
    ep = torch.exp(mean + half - lognorm)  # G x Q x K   P+(t) / norm
    em = torch.exp(mean - half - lognorm)  # P-(t) / norm
    rp = weights[None, :, None] / (1.0 + tc)  # G x Q x n
    rm = weights[None, :, None] / (1.0 - tc)
    pos = ep.mT @ rp + em.mT @ rm  # G x K x n, for s_ki = +1
    neg = ep.mT @ rm + em.mT @ rp  # for s_ki = -1
    return 0.5 * c[:, None, :] * s[None] * torch.where(s[None] > 0, pos, neg)


def _prior_var(c: torch.Tensor) -> torch.Tensor:
    """Prior variance of ``phi_i`` (unit amplitude): ``G x n``.

    ``c_i sum_{R even, i not in R} prod_{j in R} c_j / (|R| + 1)^2``, with ``1/(r+1)^2`` the
    double integral of ``(t u)^r`` over the unit square (tensor Gauss–Legendre rule); the even
    product over ``j != i`` is the full product divided by the ``i``-th factor, as in
    :func:`_shapley_of_kernel`.
    """
    nodes, weights = _gauss_legendre(c.shape[1])
    tu = (nodes[:, None] * nodes[None, :]).reshape(-1)
    ww = (weights[:, None] * weights[None, :]).reshape(-1)
    lognorm = torch.log1p(c).sum(-1)[:, None]  # G x 1
    acc = torch.zeros_like(c)
    chunk = max(1, _QUAD_ELEMENTS // max(c.numel(), 1))
    for start in range(0, len(tu), chunk):
        xc = tu[None, start : start + chunk, None] * c[:, None, :]  # G x X x n
        w = ww[None, start : start + chunk]
        ep = w * torch.exp(torch.log1p(xc).sum(-1) - lognorm)  # G x X
        em = w * torch.exp(torch.log1p(-xc).sum(-1) - lognorm)
        acc += (ep[..., None] / (1.0 + xc) + em[..., None] / (1.0 - xc)).sum(1)
    return 0.5 * c * acc


def _cholesky(k: torch.Tensor, m: int, jitter: torch.Tensor) -> torch.Tensor:
    """Cholesky of ``G x K x K`` kernels with ``jitter`` (``G``, absolute) added to the first
    ``m`` diagonal entries (the sampled pairs; the last row, ``v(N) - v(empty)``, stays
    exact), raised as needed. Adds the jitter to ``k`` in place."""
    mask = torch.zeros(k.shape[-1], dtype=torch.float64)
    mask[:m] = 1.0
    eps = jitter.reshape(-1, 1).clamp_min(1e-300)
    diag = torch.diagonal(k, dim1=-2, dim2=-1)
    diag.add_(eps * mask)
    for _ in range(8):
        chol, info = torch.linalg.cholesky_ex(k)
        if not bool((info > 0).any()):
            ok: torch.Tensor = chol
            return ok
        diag.add_(99.0 * eps * mask)
        eps = eps * 100.0
    # Last resort: jitter every row (efficiency is restored afterwards).
    diag.add_(eps)
    out: torch.Tensor = torch.linalg.cholesky(k)
    return out


def _gp_columns(s: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, tau: torch.Tensor, m: int,
                jitter: float, shared: bool, lin: torch.Tensor,
                dist: tuple[torch.Tensor, torch.Tensor] | None = None,
                terms: tuple[torch.Tensor, torch.Tensor] | None = None,
                low_rank: tuple[torch.Tensor, torch.Tensor, float] | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior Shapley values for columns ``y`` (``C x K``) under kernels ``(lam, tau)``.

    The kernel is the odd product kernel plus ``tau * s . s' / n``: an extra prior variance
    ``tau / n`` on every main effect (``tau`` large: main effects practically unshrunk, and a
    linear game is recovered to ~1/tau once there are ``n`` pairs).

    ``lam`` is ``1 x n`` and ``tau`` ``1`` (one kernel for every column) when ``shared``, else
    ``C x n`` and ``C``; ``lin`` is ``s @ s.T / n``. ``dist``: optional ``(D_w, W)`` with ``lam = scale * w`` — the
    ``w``-weighted Hamming distances and ``sum(w)`` — so the kernel is two exponentials away.
    ``terms``: optional precomputed ``(_shapley_of_kernel(s, c), _prior_var(c))`` for ``lam``
    (they do not depend on ``tau``).
    ``low_rank``: optional ``(F G x K, P G x n, rho)`` adding ``rho * kbar * F F^T`` to the
    kernel (``kbar`` the product kernel's mean diagonal), with ``P`` the Shapley values of
    ``z -> F(z) / 2`` (the sign-aware kernel, :func:`_sign_terms`).

    Returns ``(loglik C, phi C x n, var C x n, alpha C x K, loo C)``; ``loo`` is
    :func:`_loo_ratio` (1 beyond ``_LOO_ROWS`` values), ``var`` the plug-in variance.
    """
    kc, n = s.shape
    if dist is None:
        k = _kernel(s, s, lam)  # G x K x K
    else:
        dw, wsum = dist
        scale = (lam.sum(-1) / wsum)[:, None, None]
        k = torch.exp(-scale * dw).sub_(torch.exp(-scale * (wsum[:, None, None] - dw))).mul_(0.5)
    kbar = torch.diagonal(k, dim1=-2, dim2=-1).mean(-1)  # G
    jit = jitter * kbar
    if bool((tau != 0).any()):
        k.add_(tau[:, None, None] * lin[None])
    if low_rank is not None:
        feat, shap_feat, rho = low_rank
        wlr = rho * kbar  # G
        k.add_(wlr[:, None, None] * feat[:, :, None] * feat[:, None, :])
    chol = _cholesky(k, m, jit)
    del k
    yy = y.T[None] if shared else y[:, :, None]  # 1 x K x C  or  C x K x 1
    a = torch.linalg.solve_triangular(chol, yy, upper=False)
    alpha = torch.linalg.solve_triangular(chol.mT, a, upper=True)
    quad = (a**2).sum(1).reshape(-1)  # C
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # G
    sigma2 = quad.clamp_min(1e-300) / kc
    loglik = -0.5 * kc * torch.log(sigma2) - 0.5 * logdet.reshape(-1)
    if terms is None:
        c = torch.tanh(lam / 2)
        terms = _shapley_of_kernel(s, c), _prior_var(c)
    g = terms[0] + tau[:, None, None] * s[None] / n  # G x K x n
    prior = terms[1] + tau[:, None] / n  # G x n
    if low_rank is not None:
        g = g + wlr[:, None, None] * feat[:, :, None] * shap_feat[:, None, :]
        prior = prior + wlr[:, None] * shap_feat**2
    lg = torch.linalg.solve_triangular(chol, g, upper=False)
    pv = (prior - (lg**2).sum(1)).clamp_min(0.0)  # G x n
    var = sigma2[:, None] * pv
    loo = _loo_ratio(chol, alpha[0].T[..., None] if shared else alpha, sigma2) if kc <= _LOO_ROWS \
        else torch.ones_like(sigma2)
    if shared:
        return loglik, alpha[0].T @ g[0], var, alpha[0].T, loo
    return loglik, (alpha * g).sum(1), var, alpha[..., 0], loo


def _loo_ratio(chol: torch.Tensor, alpha: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Leave-one-out check of the profiled amplitude: ``C`` factors ``>= 1``.

    The standardised leave-one-out residual of value ``i`` is ``alpha_i / sqrt([K^-1]_ii)`` in
    units of the amplitude (Rasmussen & Williams 2006, eq. 5.12; Sundararajan & Keerthi 2001), so
    ``mean_i alpha_i^2 / [K^-1]_ii`` is the cross-validated amplitude; over the maximum-likelihood
    one ``y^T K^-1 y / K`` (``sigma2``), floored at 1. ``chol``: ``G x K x K``; ``alpha``:
    ``C x K x 1`` (``G`` is 1 or ``C``).
    """
    eye = torch.eye(chol.shape[-1], dtype=chol.dtype).expand_as(chol)
    kinv_diag = (torch.linalg.solve_triangular(chol, eye, upper=False) ** 2).sum(-2)  # G x K
    cv = (alpha[..., 0] ** 2 / kinv_diag.clamp_min(1e-300)).mean(-1)
    ratio: torch.Tensor = (cv / sigma2.clamp_min(1e-300)).clamp_min(1.0)
    return ratio


def _select(best: dict[str, torch.Tensor] | None, ll: torch.Tensor, **vals: torch.Tensor,
            ) -> dict[str, torch.Tensor]:
    if best is None:
        return {"ll": ll, **vals}
    # a kernel replaces the best so far only where its likelihood is higher by more than
    # rounding: kernels can tie in exact arithmetic (codes of the design mutually orthogonal,
    # as the greedy picks them at fewer pairs than players, make every isotropic kernel's
    # matrix diagonal, so every likelihood equal), and the last bits then chose the ARD
    # stage's scales (8 players, 7 pairs: credits 0.2 apart, 7% of the largest, after a
    # 7e-15 change of the model's outputs); the first kernel among tied ones is kept, as
    # the design's greedy does (:func:`._gp_design._first_best`)
    better = ll > best["ll"] + _TIE_RTOL * best["ll"].abs().clamp_min(1.0)
    out = {"ll": torch.where(better, ll, best["ll"])}
    for key, v in vals.items():
        b = better.reshape(-1, *([1] * (v.ndim - 1)))
        out[key] = torch.where(b, v, best[key])
    return out


def _top_first(ll: torch.Tensor, k: int) -> torch.Tensor:
    """Per row of ``ll`` (``C x G`` log-likelihoods), the indices of the ``k`` largest, best
    first, likelihoods within rounding of each other (steps of ``_TIE_RTOL * max(|top|, 1)``
    below the row's largest, as :func:`_select` compares) ranked in index order: the search
    path's ``topk`` / ``argmax`` took exact ties (codes of the search subset mutually
    orthogonal: every isotropic likelihood equal) by their last bits (256 players, 200
    orthogonal pairs, full grid searched on 128: credits 0.25 of the largest apart after a
    1e-15 relative change of the differences)."""
    top = ll.max(1, keepdim=True).values
    scale = _TIE_RTOL * top.abs().clamp_min(1.0)
    key = torch.floor((top - ll) / scale)
    return torch.argsort(key, dim=1, stable=True)[:, :k]


#: One posterior per kernel tried: ``(loglik C, phi C x n, var C x n, lam C x n, tau C,
#: alpha C x K, loo C)`` (``loo``: :func:`_loo_ratio`).
_Post = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
              torch.Tensor]


def _iso_pass(sa: torch.Tensor, y: torch.Tensor, m: int, jitter: float,
              kernels: list[tuple[float, float]]) -> list[_Post]:
    """Isotropic kernels ``(Lambda, tau)``, each shared by every column (one factorisation)."""
    n, cols = sa.shape[1], y.shape[0]
    gram = sa @ sa.T
    lin = gram / n
    iso_dist = ((n - gram) / 2)[None], torch.full((1,), float(n), dtype=torch.float64)
    out: list[_Post] = []
    terms: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
    for total, tau in kernels:
        lam = torch.full((1, n), min(total / n, _MAX_LAMBDA), dtype=torch.float64)
        if total not in terms:
            c = torch.tanh(lam / 2)
            terms[total] = _shapley_of_kernel(sa, c), _prior_var(c)
        tt = torch.full((1,), tau, dtype=torch.float64)
        ll, phi, var, alpha, loo = _gp_columns(sa, y, lam, tt, m, jitter, shared=True, lin=lin,
                                               dist=iso_dist, terms=terms[total])
        out.append((ll, phi, var.expand(cols, n), lam.expand(cols, n), tt.expand(cols),
                    alpha.expand(cols, -1), loo))
    return out


def _ard_pass(sa: torch.Tensor, y: torch.Tensor, m: int, jitter: float, phi_iso: torch.Tensor,
              iso_total: torch.Tensor, tau: torch.Tensor, factors: torch.Tensor) -> list[_Post]:
    """ARD kernels, per column: ``lambda_j`` proportional to ``|phi_iso_j|`` with total scale
    ``iso_total * factors[:, f]`` (``factors``: ``C x F``), one posterior per ``f``."""
    n, cols = sa.shape[1], y.shape[0]
    lin = sa @ sa.T / n
    w = phi_iso.abs()
    w = w + 1e-3 * w.mean(-1, keepdim=True) + 1e-300
    w = w / w.mean(-1, keepdim=True)
    kc = sa.shape[0]
    chunk = int(max(1, _CHUNK_BYTES // (8 * kc * kc * 3)))
    parts: list[list[_Post]] = [[] for _ in range(factors.shape[1])]
    for start in range(0, cols, chunk):
        stop = min(start + chunk, cols)
        wc, tc = w[start:stop], tau[start:stop]
        wsum = wc.sum(-1)
        dw = (wsum[:, None, None] - (sa[None] * wc[:, None, :]) @ sa.T) / 2
        for fi in range(factors.shape[1]):
            ard_total = iso_total[start:stop, None] * factors[start:stop, fi : fi + 1]
            scale = torch.minimum(ard_total / n, _MAX_LAMBDA / wc.max(-1, keepdim=True).values)
            lam = scale * wc
            ll, phi, var, alpha, loo = _gp_columns(sa, y[start:stop], lam, tc, m, jitter,
                                                   shared=False, lin=lin, dist=(dw, wsum))
            parts[fi].append((ll, phi, var, lam, tc, alpha, loo))
        del dw
    return [tuple(torch.cat([p[j] for p in part]) for j in range(7))  # type: ignore[misc]
            for part in parts]


def _sign_terms(sa: torch.Tensor, a: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sign-aware order-3 feature of each column's main-effect estimate ``a`` (``C x n``).

    ``F(s) = e_3(a * s) / sqrt(e_3(a^2))`` (``e_3`` the elementary symmetric polynomial of
    degree 3, by Newton's identity ``e_3 = (p_1^3 - 3 p_1 p_2 + 2 p_3) / 6`` of the power sums
    ``p_k``; ``p_2 = sum_j a_j^2`` does not depend on ``s``), normalised to unit average square
    over all coalitions, and ``P_i`` the Shapley value of ``z -> F(s(z)) / 2``:
    ``a_i e_2(a without i) / (3 sqrt(e_3(a^2)))`` (the Shapley value of ``s_T`` is ``2 / |T|``
    for each ``i in T``). Returns ``(F C x K, P C x n, ok C)``; ``ok`` is false where ``a`` has
    fewer than three clearly non-zero entries (no order-3 direction), and ``F``, ``P`` are zero
    there.
    """
    a = a / a.abs().amax(-1, keepdim=True).clamp_min(1e-300)
    a2 = a * a
    q1, q2, q3 = a2.sum(-1), (a2 * a2).sum(-1), (a2 * a2 * a2).sum(-1)  # C
    norm = (q1**3 - 3.0 * q1 * q2 + 2.0 * q3) / 6.0  # e_3(a^2)
    ok = norm > 1e-10 * q1**3
    root = torch.where(ok, norm, torch.ones_like(norm)).sqrt()
    p1, p3 = a @ sa.T, (a2 * a) @ sa.T  # C x K
    feat = (p1**3 - 3.0 * p1 * q1[:, None] + 2.0 * p3) / 6.0 / root[:, None]
    rest = a.sum(-1, keepdim=True) - a  # sum over j != i
    e2 = (rest**2 - (q1[:, None] - a2)) / 2.0
    shap = a * e2 / 3.0 / root[:, None]
    okf = ok[:, None].to(feat.dtype)
    return feat * okf, shap * okf, ok


def _sign_pass(sa: torch.Tensor, y: torch.Tensor, m: int, jitter: float, phi: torch.Tensor,
               lam: torch.Tensor, tau: torch.Tensor) -> _Post:
    """The sign-aware kernel, per column: its product kernel ``(lam, tau)`` (the best one found)
    plus ``_SIGN_RHO * kbar * F F^T`` for the column's order-3 feature ``F`` of the model
    average's Shapley values ``phi`` (:func:`_sign_terms`). Columns without an order-3
    direction get log-likelihood ``-inf`` (no weight in the average)."""
    cols = y.shape[0]
    kc = sa.shape[0]
    lin = sa @ sa.T / sa.shape[1]
    chunk = int(max(1, _CHUNK_BYTES // (8 * kc * kc * 3)))
    parts: list[_Post] = []
    for start in range(0, cols, chunk):
        stop = min(start + chunk, cols)
        feat, shap, ok = _sign_terms(sa, phi[start:stop])
        ll, ph, var, alpha, loo = _gp_columns(sa, y[start:stop], lam[start:stop], tau[start:stop], m,
                                         jitter, shared=False, lin=lin,
                                         low_rank=(feat, shap, _SIGN_RHO))
        ll = torch.where(ok, ll, torch.full_like(ll, -torch.inf))
        parts.append((ll, ph, var, lam[start:stop], tau[start:stop], alpha, loo))
    return tuple(torch.cat([p[j] for p in parts]) for j in range(7))  # type: ignore[return-value]


def _best(pool: list[_Post]) -> dict[str, torch.Tensor]:
    best: dict[str, torch.Tensor] | None = None
    for ll, phi, var, lam, tau, alpha, loo in pool:
        best = _select(best, ll, phi=phi, var=var, lam=lam, tau=tau, alpha=alpha, loo=loo)
    assert best is not None
    return best


def _average(pool: list[_Post]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior mean and variance of the Shapley values averaged over the kernels of ``pool``
    with weights proportional to their marginal likelihoods (the variance includes their
    spread), and the within-kernel part of that variance (the weighted mean of the kernels'
    own variances, which :func:`_student_var` inflates)."""
    ll_all = torch.stack([p[0] for p in pool], 1)  # C x G
    wts = torch.softmax(ll_all, 1)[..., None]
    phis = torch.stack([p[1] for p in pool], 1)  # C x G x n
    phi = (wts * phis).sum(1)
    vars_ = torch.stack([p[2] for p in pool], 1)
    var = (wts * (vars_ + phis**2)).sum(1) - phi**2
    return phi, var.clamp_min(0.0), (wts * vars_).sum(1)


def _even_ratio(sa: torch.Tensor, y: torch.Tensor, ye: torch.Tensor, lam: torch.Tensor,
                alpha: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """How much the even half of the pairs raises one kernel's amplitude: ``C`` factors >= 1.

    The product kernel ``prod_j (1 + c_j s_j s'_j)`` is the sum of its odd part (the GP fitted
    to ``d``) and its even part, with one amplitude: a pair ``(z, 1 - z)`` observes the even
    part through ``e = v(z) + v(1 - z)`` (``ye``: ``C x K``, the last column
    ``v(N) + v(empty)``), whose quadratic form, with the constant term (any offset of the game)
    projected out, has ``K - 1`` degrees of freedom. The pooled amplitude
    ``(y^T K_odd^-1 y + e^T P K_even^-1 P e) / (2K - 1)`` over the odd one
    ``y^T K_odd^-1 y / K``, floored at 1: raised where the even half shows a rougher game than
    the odd half alone, never lowered. Only for ``tau = 0`` kernels (the main-effect term is
    odd, so it has no even counterpart whose amplitude it shares); 1 elsewhere.
    """
    kc = sa.shape[0]
    q_odd = (alpha * y).sum(-1)  # y^T K^-1 y, C
    shared = bool((lam == lam[:1]).all())
    lam_u = lam[:1] if shared else lam  # G x n
    total = lam_u.sum(-1)[:, None, None]
    dist = (total - (sa[None] * lam_u[:, None, :]) @ sa.T) / 2
    k = (torch.exp(-dist) + torch.exp(-(total - dist))) / 2  # even part, normalised alike
    chol = _cholesky(k, kc, 1e-9 * torch.diagonal(k, dim1=-2, dim2=-1).mean(-1))
    ones = torch.ones(chol.shape[0], kc, 1, dtype=torch.float64)
    b = torch.linalg.solve_triangular(chol, ones, upper=False)[..., 0]  # G x K
    rhs = ye.T[None] if shared else ye[:, :, None]
    a = torch.linalg.solve_triangular(chol, rhs, upper=False)  # G x K x C'
    a = a[0].T if shared else a[..., 0]  # C x K
    q_even = (a**2).sum(-1) - (a * b).sum(-1) ** 2 / (b * b).sum(-1)  # constant projected out
    pooled = (q_odd + q_even.clamp_min(0.0)) / (2 * kc - 1)
    ratio = (pooled / (q_odd / kc).clamp_min(1e-300)).clamp_min(1.0)
    return torch.where(tau == 0, ratio, torch.ones_like(ratio))


def _even_ratios(sa: torch.Tensor, y: torch.Tensor, ye: torch.Tensor, post: _Post) -> torch.Tensor:
    """:func:`_even_ratio` for one posterior of the pool, factorising only for its columns with
    ``tau = 0`` (the others get 1): ``C``."""
    lam, tau, alpha = post[3], post[4], post[5]
    out = torch.ones_like(tau)
    idx = (tau == 0).nonzero().reshape(-1)
    if len(idx):
        out[idx] = _even_ratio(sa, y[idx], ye[idx], lam[idx], alpha[idx], tau[idx])
    return out


def _reference_floor(ll: list[torch.Tensor], var: list[torch.Tensor]) -> torch.Tensor:
    """The variance no member of the model average may fall below: ``C x n``, the isotropic
    ``tau = 0`` members' variances (``var``), averaged with weights proportional to their
    marginal likelihoods (``ll``) among themselves.

    Two kinds of member claim more than the pairs can show (issue #14, round 7). An ARD kernel's
    per-player scales, and the sign-aware and NNGP members' floors built on the best product
    kernel, come from the same pairs: a player whose first estimate is near 0 gets
    ``lambda_j ~ 0``, so a prior variance, and a posterior variance, near 0 whatever its true
    value. A kernel with a main-effect term (``tau > 0``) shares one profiled amplitude with the
    interactions: with about ``n`` pairs or fewer the main effects interpolate the pairs, the
    profiled amplitude falls towards ``0`` as ``tau`` grows (``~1/tau``), and so does the
    variance (alone, the ``tau = 1e6`` members covered 0.2-0.8% within 2 sd at 31 pairs of 32
    players). The isotropic ``tau = 0`` members have neither: no scale fitted per player, no
    term that absorbs the amplitude. The point estimates do not use the floor.
    """
    w = torch.softmax(torch.stack(ll, 1), 1)[..., None]
    return (w * torch.stack(var, 1)).sum(1)


def _student_var(var: torch.Tensor, within: torch.Tensor, rows: int) -> torch.Tensor:
    """The reported variance: the within-kernel part ``within`` of ``var`` scaled by
    ``t_factor(rows)^2`` (Student-t predictive for the profiled amplitude, see the module
    docstring); the spread between the averaged kernels is kept as it is."""
    return var + (t_factor(float(rows)) ** 2 - 1.0) * within


def _search_subset(m: int, size: int) -> torch.Tensor:
    """``size`` of ``m`` pair indices, evenly spaced: the design lists pairs stratum by stratum
    (singletons first), so the subset keeps every stratum's share."""
    idx = np.unique(np.round(np.linspace(0, m - 1, size)).astype(np.int64))
    return torch.from_numpy(idx)


def _size_counts(s: torch.Tensor, n: int) -> torch.Tensor:
    """Pairs per size stratum (the smaller side's size, from 1)."""
    return torch.bincount(torch.minimum((s > 0).sum(1), (s < 0).sum(1)) - 1, minlength=n // 2)


def gp_shapley_fit(s: torch.Tensor, d: torch.Tensor, delta: torch.Tensor, *, ard: bool = True,
                   jitter: float = 1e-9, average: bool = True, search_pairs: int | None = None,
                   sign: bool = True, even: tuple[torch.Tensor, torch.Tensor] | None = None,
                   composed: tuple[torch.Tensor, torch.Tensor] | None = None, nngp_seed: int = 0,
                   lean: bool = False, nngp_share: float | None = None,
                   nngp_gram: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """GP posterior Shapley values from complementary pairs.

    Args:
        s: ``m x n`` pairs in ``{-1, +1}``.
        d: ``C x m`` differences ``v(z) - v(1 - z)`` (``C`` = samples x targets).
        delta: ``C`` values ``v(N) - v(empty)``.
        ard: second, ARD stage (see module docstring). default=True.
        jitter: relative diagonal jitter of the sampled pairs. default=1e-9.
        average: return the marginal-likelihood-weighted average of the posteriors over every
            kernel fitted (Bayesian model averaging with a flat prior on the grid) instead of the
            single best kernel's. The returned kernel and weights are the best one's either way.
            default=True.
        search_pairs: with more pairs than this, the whole grid is searched on this many
            (evenly spaced) pairs, and only the kernels that search ranks best — per column the
            best ``_KEEP_ISO`` (4) isotropic kernels and ``_KEEP_ARD`` (2) ARD scales — are
            fitted on every pair (6 factorisations of the full pair matrix for one column
            instead of 18; 2 more per further column instead of 3). ``None``: ``_SEARCH_PAIRS``
            (256). default=None.
        sign: with ``average`` and at most ``10 n`` pairs, add the sign-aware kernel to the
            average (see the module docstring; one factorisation per column). default=True.
        even: optional ``(C x m sums v(z) + v(1 - z), C values v(N) + v(empty))``, the even
            half of the same pairs: with ``average`` and at most ``min(n, search_pairs)`` pairs,
            their amplitude may raise the standard errors (:func:`_even_ratio`; never the
            values). default=None.
        composed: ``(x C x n, base C x n)``, each column's explained input and baseline: with
            ``average`` and at most ``_NNGP_MAX_PAIRS`` pairs, the neural-network-GP kernels
            on the composed inputs join the average (:func:`._nngp.nngp_pass`). default=None.
        nngp_seed: seed of the coalitions the NNGP surrogate's Shapley values are computed on
            (beyond ``2^n <= 8,192``). default=0.
        lean: search the lean grid (:data:`_LEAN`: 4 isotropic kernels, 1 ARD scale, searched
            on 128 pairs keeping 2 and 1) instead of the full one (15, 3, 256, 4 and 2).
            default=False.
        nngp_share: with ``composed``, the most the NNGP member may weigh in the model average
            against the other kernels together (its log-likelihood lowered to at most their
            ``logsumexp`` plus ``logit(share)``); ``None`` weighs it by its marginal likelihood
            as every other kernel. default=None.
        nngp_gram: with ``composed``, the NNGP kernels' first-layer weight covariance
            (``n x n``, mean diagonal one; :func:`._nngp.first_layer_gram`) in place of the
            identity. default=None.

    Returns:
        ``(phi C x n, var C x n, lam C x n, tau C, alpha C x (m+1))``: posterior means and
        variances of the Shapley values, the chosen product kernel and its representer weights
        (training points are ``s`` then the all-ones pair; the sign-aware kernel is never the
        one returned, so :func:`gp_predict` applies).
    """
    m, n = s.shape
    cols = d.shape[0]
    grid = _LEAN if lean else _FULL
    search = grid.search if search_pairs is None else int(search_pairs)
    ones = torch.ones(1, n, dtype=torch.float64)
    kernels = list(grid.iso)
    factors = torch.tensor(grid.ard, dtype=torch.float64).expand(cols, -1)
    if m > search:
        sub = _search_subset(m, search)
        sa_sub = torch.cat([s[sub], ones])
        y_sub = torch.cat([d[:, sub], delta[:, None]], dim=1)
        iso_sub = _iso_pass(sa_sub, y_sub, len(sub), jitter, kernels)
        ll_iso = torch.stack([p[0] for p in iso_sub], 1)  # C x G
        top = _top_first(ll_iso, min(grid.keep_iso, len(kernels)))
        kept = {int(i) for i in top.reshape(-1).tolist()}
        if len(sub) < n:
            # fewer search pairs than players: a main-effect term interpolates the subset
            # whatever the game, so its likelihood there cannot rank the terms (a game whose odd
            # part is linear, 256 players, 299 pairs, lean search on 128: the four isotropic
            # kernels within 0.15 of each other in log-likelihood, the tau = 1e6 ones ranked
            # last; on every pair they win by 300 and recover the game to 1e-7, but they had
            # been dropped: relative error 0.23, 1 seed in 6). Each tau's best kernel is kept.
            for tau in sorted({k[1] for k in kernels}):
                idx = [i for i, k in enumerate(kernels) if k[1] == tau]
                kept |= {idx[int(j)] for j in _top_first(ll_iso[:, idx], 1)[:, 0].tolist()}
        keep = sorted(kept)
        if ard:
            b = _best(iso_sub)
            ard_sub = _ard_pass(sa_sub, y_sub, len(sub), jitter, b["phi"], b["lam"].sum(-1),
                                b["tau"], factors)
            ll_ard = torch.stack([p[0] for p in ard_sub], 1)  # C x F
            pick = _top_first(ll_ard, min(grid.keep_ard, ll_ard.shape[1]))
            factors = factors.gather(1, pick)
        kernels = [kernels[i] for i in keep]
    sa = torch.cat([s, ones])
    y = torch.cat([d, delta[:, None]], dim=1)  # C x K
    pool = _iso_pass(sa, y, m, jitter, kernels)
    if ard:
        b = _best(pool)
        pool += _ard_pass(sa, y, m, jitter, b["phi"], b["lam"].sum(-1), b["tau"], factors)
    best = _best(pool)
    phi, var = best["phi"], best["var"]
    within = var
    if average:
        phi, var, within = _average(pool)
        if sign and n >= 3 and m <= _SIGN_PAIRS_PER_PLAYER * n:
            ll, ph, vs, lam_s, tau_s, alpha_s, loo_s = _sign_pass(sa, y, m, jitter, phi,
                                                                   best["lam"], best["tau"])
            # its direction was estimated from the same pairs: never let it claim a smaller
            # posterior variance than its product kernel alone
            pool.append((ll, ph, torch.maximum(vs, best["var"]), lam_s, tau_s, alpha_s, loo_s))
            phi, var, within = _average(pool)
        if composed is not None and m <= _NNGP_MAX_PAIRS:
            phi, var, within = _nngp_member(pool, sa, y, m, jitter, composed, nngp_seed, best,
                                            nngp_share, nngp_gram)
    var_rep = var
    if average:
        if even is not None and m <= min(n, search):
            # fewer pairs than players: the amplitude rests on a handful of odd values, and the
            # even half of the same pairs (already evaluated) can show a game they hide; beyond
            # the search subset it would cost one more factorisation per kept kernel (+28% of the
            # fits' CPU at 1,000 pairs of 1,024 players) for an amplitude already resting on
            # > 256 values
            ye = torch.cat([even[0], even[1][:, None]], dim=1)
            own = [p[2] * torch.maximum(_even_ratios(sa, y, ye, p), p[6])[:, None] for p in pool]
        else:
            own = [p[2] * p[6][:, None] for p in pool]
        # at few pairs per player no member claims a smaller variance than the isotropic
        # tau = 0 members (the first len(kernels) of the pool are the isotropic ones): see
        # _reference_floor
        ref = [i for i, (_, tau_k) in enumerate(kernels) if tau_k == 0]
        if ref:
            floor = _reference_floor([pool[i][0] for i in ref], [own[i] for i in ref])
            # beyond 1.5 pairs per player only the members whose kernels were fitted per player
            # from the same pairs (ARD, sign-aware, NNGP: after the isotropic ones) are floored
            first = 0 if m <= _FLOOR_PAIRS_PER_PLAYER * n else len(kernels)
            own = own[:first] + [torch.maximum(v, floor) for v in own[first:]]
        wts = torch.softmax(torch.stack([p[0] for p in pool], 1), 1)[..., None]
        reported_within = (wts * torch.stack(own, 1)).sum(1)
        var_rep, within = var - within + reported_within, reported_within
    # Condition on efficiency (removes the rounding-level gap left by the jitter).
    gap = delta - phi.sum(-1)
    share = torch.where(var.sum(-1, keepdim=True) > 0, var / var.sum(-1, keepdim=True).clamp_min(1e-300),
                        torch.full_like(var, 1.0 / n))
    phi = phi + share * gap[:, None]
    # the point estimate above used the plug-in variances only to spread a rounding-level gap;
    # the reported variance accounts for the amplitude estimated from the same m + 1 values
    return phi, _student_var(var_rep, within, m + 1), best["lam"], best["tau"], best["alpha"]


def _nngp_member(pool: list[_Post], sa: torch.Tensor, y: torch.Tensor, m: int, jitter: float,
                 composed: tuple[torch.Tensor, torch.Tensor], seed: int,
                 best: dict[str, torch.Tensor], share: float | None = None,
                 gram: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append the NNGP kernels' posterior (one member, its grid's total marginal likelihood,
    with ``share`` lowered where needed so that it weighs at most that share of the average)
    to ``pool`` and return the new average. Its variance is floored at the best product
    kernel's, as the sign-aware kernel's."""
    from ._nngp import nngp_pass

    ll, ph, vs = nngp_pass(sa, y, m, jitter, composed[0], composed[1], seed,
                           control=(best["lam"], best["tau"], best["alpha"], best["phi"]),
                           gram=gram)
    if share is not None and share < 1:
        rest = torch.logsumexp(torch.stack([p[0] for p in pool], 1), 1)
        cap = float(np.log(share / (1.0 - share))) if share > 0 else -float("inf")
        ll = rest + torch.clamp(ll - rest, max=cap)
    pool.append((ll, ph, torch.maximum(vs, best["var"]), best["lam"], best["tau"],
                 best["alpha"], torch.ones_like(ll)))
    return _average(pool)


def composed_inputs(game: Game) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(x B x n, base B x n)`` of a feature game whose players are the elements of one
    floating-point input with one baseline per sample (``None`` otherwise: groups, several
    inputs, background sets, integer inputs, other kinds of players)."""
    inputs = getattr(game, "inputs", None)
    if getattr(game, "kind", None) != "feature" or not isinstance(inputs, list) or len(inputs) != 1:
        return None
    inp = inputs[0]
    if (getattr(inp, "groups", 1) is not None or getattr(inp, "is_int", True)
            or getattr(inp, "base_mode", "") not in ("single", "per_sample")
            or int(inp.x.shape[1]) != int(game.n_players)):
        return None
    x = inp.x.detach().to("cpu", torch.float64)
    base = inp.base.detach().to("cpu", torch.float64).expand(x.shape[0], -1)
    return x, base.contiguous()


def first_layer_of(game: Game, composed: tuple[torch.Tensor, torch.Tensor] | None = None,
                   live: bool = True) -> torch.Tensor | None:
    """The first layer's weight covariance of a feature game's model (``n x n``, mean
    diagonal one; :func:`._nngp.first_layer_gram`) where the model is a ``torch.nn.Sequential``
    whose first module is a ``torch.nn.Linear`` taking the ``n`` players' input as it is (no
    extra forward arguments); ``None`` otherwise. Reads the weight only (no model call).

    With ``composed`` (the columns' inputs and baselines, ``C x n`` each) and ``live``, where
    the second module is a plain ``torch.nn.ReLU`` or ``ReLU6`` (no hooks), the rows that cannot
    fire on a column's box are left out of that column's Gram (``C x n x n``;
    :func:`._nngp.live_first_layer_grams`), where any is."""
    from ._nngp import first_layer_gram, live_first_layer_grams

    module = getattr(getattr(game, "model", None), "module", None)
    if not isinstance(module, torch.nn.Sequential) or len(module) == 0:
        return None
    first = module[0]
    extra_args = getattr(game, "forward_args", None)
    extra_kwargs = getattr(game, "forward_kwargs", None)
    if (not isinstance(first, torch.nn.Linear) or int(first.in_features) != int(game.n_players)
            or extra_args or extra_kwargs):
        return None
    # the Gram is the players' only where the input reaches ``first`` unchanged and ``first``
    # computes ``x W' + b``: a subclass's own ``forward`` (a Sequential that permutes its input
    # first, a Linear that does) or a forward pre-hook (on the Sequential, the Linear, or every
    # module) may feed it something else, and a hook on the Linear may replace what it computes
    # (rev45p: each of these used ``W' W`` against permuted players). Old-style weight norm's
    # pre-hook only recomputes the weight, and is read as it would compute it.
    # (rev46p: a global forward hook may replace every module's output, the Linear's too, as a
    # hook on the Linear may: it was missed, and ``W' W`` used against permuted players)
    weight = first.weight
    global_pre = getattr(torch.nn.modules.module, "_global_forward_pre_hooks", None)
    global_post = getattr(torch.nn.modules.module, "_global_forward_hooks", None)
    if (type(module).forward is not torch.nn.Sequential.forward
            or type(first).forward is not torch.nn.Linear.forward
            # rev48p: a ``forward`` set on the instance (monkeypatching, accelerate-style
            # hooks) replaces the class's as a subclass's would
            or "forward" in vars(module) or "forward" in vars(first)
            or module._forward_pre_hooks or first._forward_hooks or global_pre or global_post):
        return None
    for hook in first._forward_pre_hooks.values():
        if not isinstance(hook, _WeightNorm) or hook.name != "weight":
            return None
        weight = hook.compute_weight(first)
    act = module[1] if len(module) > 1 else None
    if (live and composed is not None and act is not None
            and (type(act) is torch.nn.ReLU
                 or (type(act) is torch.nn.ReLU6 and act.min_val == 0.0 and act.max_val > 0.0))
            and "forward" not in vars(act)
            and not (act._forward_pre_hooks or act._forward_hooks)):
        grams = live_first_layer_grams(weight, first.bias, composed[0], composed[1])
        if grams is not None:
            return grams
    return first_layer_gram(weight)


def gp_predict(s_train: torch.Tensor, s_new: torch.Tensor, lam: torch.Tensor, tau: torch.Tensor,
               alpha: torch.Tensor) -> torch.Tensor:
    """Posterior mean of ``d`` at new pairs: ``C x m_new`` (``lam``: ``C x n``, ``tau``: ``C``)."""
    n = s_train.shape[1]
    sa = torch.cat([s_train, torch.ones(1, n, dtype=torch.float64)])
    out = tau[:, None] * ((alpha @ sa) @ s_new.T) / n
    chunk = int(max(1, _CHUNK_BYTES // (8 * max(s_new.shape[0], 1) * sa.shape[0] * 2)))
    for start in range(0, lam.shape[0], chunk):
        stop = min(start + chunk, lam.shape[0])
        k = _kernel(s_new, sa, lam[start:stop])  # C x m_new x K
        out[start:stop] += (k @ alpha[start:stop, :, None])[..., 0]
    return out


def _pair_values(game: Game, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v(z) - v(1 - z), v(z) + v(1 - z))`` for each pair: ``B x T x m`` each, from the one
    ``game.value`` call of :func:`._shapley_common.pair_differences` (same differences)."""
    m = s.shape[0]
    if m == 0:
        empty = torch.empty(game.n_samples, game.n_targets, 0, dtype=torch.float64)
        return empty, empty
    v = game.value(pair_masks(s))  # B x 2m x T
    return (v[:, :m] - v[:, m:]).permute(0, 2, 1), (v[:, :m] + v[:, m:]).permute(0, 2, 1)


def _seconds_per_eval(game: Game, t_empty: float | None) -> float | None:
    """Seconds of one evaluation per input (all its model rows) for the path rule: from the
    engine's measured throughput on this model when there is one, else the one-row-per-sample
    pass that just computed ``v(empty)`` (``t_empty``) less ``_PASS_OVERHEAD_SECONDS``, else
    None. A one-row pass mostly times the per-pass overhead (0.5-1.1 ms measured on a
    256-player network whose 2,047 batched rows take ~5 ms): taken as the seconds of every one
    of ``budget - 1`` evaluations it made a cold call on a cheap model look 200-400x dearer
    than it is, and the rule kept the full search (and its 10 s design at 1,024 players);
    only its excess over the overhead is counted. A model over ~2 ms per row is seen."""
    engine = getattr(game, "engine", None)
    rate = None
    if engine is not None and hasattr(engine, "throughput"):
        rate = engine.throughput(int(getattr(game, "row_bytes", 0)))
    if rate:
        rows = int(game.n_samples) * int(getattr(game, "n_background", 1) or 1)
        return float(rows / rate)
    return None if t_empty is None else max(0.0, t_empty - _PASS_OVERHEAD_SECONDS)


def _exact_table(game: Game) -> tuple[torch.Tensor, torch.Tensor]:
    """Every coalition, ``2^n`` rows in all: ``(phi B x T x n, table B x T x 2^n)``.

    The grand coalition comes from :meth:`Game.full` (the game may already hold it from
    resolving the target, so asking ``value`` for it again would spend a row twice)."""
    n = game.n_players
    rest = game.value(all_coalitions(n)[:-1]).permute(0, 2, 1)  # B x T x (2^n - 1)
    table = torch.cat([rest, game.full()[..., None]], dim=-1)
    return shapley_from_table(table, n), table


def _gp_budget(n: int) -> int:
    """:meth:`GPShapley.default_budget` for ``n`` players."""
    return int(min(2**n, 2048))


@register
class GPShapley(Method):
    """Shapley values by Gaussian-process regression of the game over all interaction orders.

    Chooses complementary pairs by Bayesian optimal design (or samples them like
    ``kernel_shap``, stratified by size, without replacement), then fits the pair differences ``v(S) - v(N minus S)`` with a Gaussian process whose prior
    covers every interaction order with variance decaying in the order (a product kernel in the
    Walsh basis), and returns the Shapley value of the posterior mean in closed form. Kernel
    scales are chosen per sample by marginal likelihood, first isotropic, then with per-player
    scales proportional to the first estimate (ARD). The standard errors are the posterior
    standard deviations, Student-t inflated for the amplitude estimated from the same pairs
    (see the module docstring). Efficiency holds exactly; a budget of ``2^n`` gives the exact value.

    Accuracy (benchmarks/bench_shapley_accuracy.py, 10 points, seed 0, budgets 64-2048):
    relative error 0.22-0.34x the best of Captum, SHAP and shapiq 1.8 on a wine MLP
    (probability), 0.35-0.65x on a diabetes regression MLP (exact from 1,024), 0.34-0.64x on a
    random tanh network, 0.41-0.53x on a random ReLU network (probability), 0.04-0.22x on a
    logistic regression on digits, 0.57-0.67x on a random ReLU network's logit, 0.43-0.82x on a
    breast-cancer MLP logit (30 players; 0.82x at 64 evaluations) and 0.14-0.58x on a
    breast-cancer logistic regression (probability). These are without the NNGP kernels
    (``nngp=False``); the default adds them from the first pair (``nngp_from``; 1 pair per
    player before the ninth round of issue #14) up to 256 pairs, which
    took the cells at 64-512 evaluations within 0.5x the best of the three from 15 to 21 of
    32 (10 points x 2 seeds; see ``nngp`` below), and the mixed design below 3.5 pairs per
    player from 21 to 25 (``singletons_after`` below).

    Cost: the same evaluations as ``kernel_shap`` (``2 + 2 * pairs``; the smallest budget is 6,
    default budget ``min(2^n, 2048)``), plus, once per call, the optimal design (``m`` greedy
    picks from ``C <= 8,192`` candidates, ``O(m C (m + n))``, made in blocks of up to 32 picks
    with matrix-matrix products: ~0.4 s CPU at 1,023 pairs of 13 players, ~0.8 s at 30-64
    players; :func:`._gp_design.design_flops`),
    plus per explained output (sample x target) a GP fit
    whose Cholesky factorisations of the ``pairs x pairs`` kernel matrix dominate up to a few
    hundred players. Up to 256 pairs the whole hyperparameter grid (15 isotropic kernels shared
    by every output, 3 ARD kernels per output) is fitted on every pair; beyond, the grid is
    searched on 256 evenly spaced pairs and only the best kernels (per output its 4 best
    isotropic kernels and its 2 best ARD scales) are fitted on every pair, so one output at
    1,023 pairs costs 6 large factorisations instead of 18 (timings at 13-1,024 players against
    ``kernel_shap``: benchmarks/bench_gp_shapley_scaling.py). Where the NNGP kernels run (``nngp``;
    up to 256 pairs), each output adds their 32 fits and, for each kernel the marginal
    likelihood keeps, the network-kernel recursion on 8,193 coalitions: 0.1-1.4 s CPU per output
    on the accuracy benchmark's games (10-30 players), counted in :meth:`solve_flops`.

    Hand-over rule: when the estimated arithmetic of the fits (:meth:`solve_flops`, which
    grows with outputs x pairs^3 and outputs x pairs^2 x players; NNGP kernels counted only
    where they can run, a pinned ``lean=True`` priced as the lean search) exceeds ``max_solve_flops``
    (default 1e11, roughly a minute of one loaded CPU core) and the budget is at least
    ``n + 2``, the call runs ``kernel_shap`` on the same budget instead — its solve is shared by
    every output and costs a fraction of a second — and says so in ``attr.extra["note"]``.
    Large batches of cheap models therefore stay fast; for an expensive model, where the model
    rows dominate anyway, pass ``max_solve_flops=float("inf")`` to keep the GP.

    Cost rule (issue #14; ``lean=None``, the default): the estimator's own seconds are kept
    within ``max(2 s x outputs, 4 x the model's seconds for the same call)`` (outputs = samples
    x targets: the floor keeps every call that costs at most ~2 s of estimator time per
    explained output on the full search, which is every call of the accuracy benchmark, up to
    2,048 evaluations on 30 players; what it cuts is the 3-17 s per output of hundreds to
    thousands of players at large budgets). The model's seconds come
    from the engine's measured throughput on this model, else from timing the one-row pass of
    ``v(empty)``, and after the pairs are evaluated from timing them; the estimator's from
    :meth:`solve_seconds` (a prediction from flops and factorisations, not a measurement, so
    calls predicted within the floor never change, whatever the machine's load). Before the design, the first of these that fits runs: the full search;
    the lean search (:data:`_LEAN`: 4 isotropic kernels instead of 15, 1 ARD scale instead of
    3, searched on 128 pairs instead of 256, no NNGP kernels) after the optimal design; the
    lean search on the sampled ``"singletons"`` design (no design cost); else ``kernel_shap``
    on the same budget (where the budget allows it, ``>= n + 2``). After the model rows, a
    planned full search still falls back to the lean one when the measured model time is too
    short for it. Measured (benchmarks/bench_shapley_accuracy.py games, 8 games x budgets 64,
    128, 256, 512, 2048, 10 points x 2 seeds): the lean search's error / the full one's,
    geometric mean 1.007 (0.74-1.22; worst x1.22 and x1.18 on the two breast-cancer games at
    64); on the sampled design 1.56 (0.87-3.4); ``kernel_shap``'s 4.2 (1.5-156). The multiple 4
    is below the ~7x the rows ``kernel_shap`` would need to match the lean GP on the sampled
    design (error ratio 2.7, geometric mean): wherever the rule keeps a GP it is also the
    cheaper way to its accuracy. The rule makes the path depend on the machine's speed above
    the floor (``timed=False``, what dataset jobs use, prices the model at 0 s instead): it is
    recorded (``attr.params["path"]``, ``attr.params["design"]``,
    ``attr.extra["cost_rule"]`` with the seconds compared, and a sentence in
    ``attr.extra["note"]``), and ``lean=False`` / ``lean=True`` pin the full / lean search
    (deterministic for a fixed seed; ``max_solve_flops`` still applies). Under the rule a batch
    may take a *fuller* path than its points one at a time (the allowance grows per output, the
    shared design and isotropic fits do not), so a point's values can depend on which points
    share its batch or a dataset job's shard (48 players, 2,048 evaluations: alone ``gp-lean``,
    in a batch of two ``gp``, values differing by ~2e-3 of their scale); ``lean=False`` or
    ``lean=True`` makes them independent of batch and shard size (4e-9 with ``lean=False``) as
    long as the batch stays under ``max_solve_flops``: a batch above it hands over to
    ``kernel_shap`` whatever ``lean`` says, and with ``nngp=None`` (auto) first leaves the NNGP
    kernels out (at 20 players and 514 evaluations, ~6e9 flops per output with them: batches
    of more than 16 samples x targets; 11 at 30 players). ``attr.params["nngp_used"]`` says
    whether they ran; ``nngp=True`` / ``False`` with ``max_solve_flops=float("inf")`` makes a
    point's values independent of its batch. (A dataset job's shards are fixed, so its results
    stay reproducible; its last, shorter shard may run with the kernels where the others do
    not.)
    ``attr.params["path"]`` says which path ran: ``"exact"`` (budget covers every coalition),
    ``"gp"``, ``"gp-lean"``, ``"gp+adjustment"`` / ``"gp-lean+adjustment"`` (beyond
    ``max_pairs`` pairs the GP is fitted on a subset and the held-out pairs correct its
    residuals, see the module docstring) or ``"kernel_shap"`` (a hand-over).

    Args:
        allocation: which pairs are evaluated: ``"optimal"`` (Bayesian A-optimal design, see
            the module docstring; the sampled ``"singletons"`` design beyond 40% of all pairs or
            beyond ``max_pairs``), ``"singletons"`` (all ``n`` pairs ``({i}, N minus {i})``
            first, the rest sampled as KernelSHAP), ``"kernel"`` (sampled as KernelSHAP) or
            ``"leverage"`` (sampled, equal per size). default="optimal".
        ard: run the second, per-player-scale stage. default=True.
        max_pairs: most pairs the GP is fitted on. default=1024.
        max_solve_flops: estimated arithmetic of the GP fits above which the call hands over to
            ``kernel_shap`` (see above); ``float("inf")`` never hands over. default=1e11.
        sign_kernel: add the sign-aware order-3 kernel to the model average (see the module
            docstring). default=True.
        nngp: add neural-network-GP kernels on the composed inputs ``z(s)`` to the model
            average (32 kernels: erf and ReLU networks of depth 1 and 2, :mod:`._nngp`), for
            feature games with one input and one baseline per sample (not a background set),
            up to 256 pairs (``attr.params["nngp_used"]`` says whether they ran). ``None``
            (auto) adds them from ``nngp_from`` pairs per player on (default: from the first
            pair), weighed by marginal likelihood, and
            below 2.5 pairs per player with that weight capped at one half of the average
            (never more than the other kernels together), where the full search with them is
            predicted within the cost rule's 2 s for one output (a function of players and
            budget only: neither the batch nor the model's timing moves it) and the batch's
            fits with them stay under ``max_solve_flops`` (else it leaves them out and keeps
            the full search: see the batch note above); ``True`` adds them at every budget up
            to 256 pairs (priced in: the cost rule may then take the lean search, which has
            none); ``False`` never. Measured
            (benchmarks/bench_shapley_accuracy.py games, 10 points x 2 seeds, budgets 64-512,
            error with / without): auto 0.63-1.006 on the mean of the two seeds, geometric
            mean 0.87 over the 32 cells, cells within 0.5x the best of SHAP, Captum and shapiq 15 ->
            21; the worst seed x1.032 (wine at 512; the other seed x0.941). ``True`` reaches 23
            cells but costs x1.075-1.163 below 2.5 pairs per player (breast-cancer logit at
            64, digits at 64, breast-cancer logistic regression at 128), where the capped
            weight gives x0.86-1.006 instead (tanh16, mlp20, relu14 at 64: x0.86, 0.91, 0.90,
            the last newly within 0.5x; breast-cancer logit at 64 / 128 x0.98 / 0.97, digits
            x0.97, wine and the breast-cancer logistic regression x0.99-1.006; worst seed
            x1.068, digits, the other x0.86). On four games made after the threshold was
            chosen (random tanh and ReLU networks of 12-18 inputs, a wine logistic regression)
            auto was 0.66-0.96 in 12 of its 13 cells and 1.036 in one (x1.077 / x0.998 by seed,
            relative errors ~0.4%); the cap there at 64 evaluations x0.88-0.96, and on four
            games built after it was chosen (ReLU 20 inputs, tanh 15 and 18 inputs, a
            breast-cancer logistic regression on 18 features) x0.84-0.99. At 32-48 evaluations
            (10-20 players, below the benchmark's budgets) x0.88-1.00 on ten games, x1.04 /
            x1.05 on the wine and digits logistic regressions. Coverage within 2 sd at 64
            evaluations 0.87-1.00 -> 0.89-1.00. Cost: the estimator's own CPU per 10-point call
            goes from 0.02-0.5 s to 1.2-13.5 s where they run (one thread; 1.5-5 s at 32-128
            evaluations where the cap applies; 20 players at 512 evaluations the most); budgets
            above 514 are unchanged.
            default=None.
        nngp_cap: with ``nngp=None``, the most the NNGP kernels may weigh in the model
            average below 2.5 pairs per player (against the other kernels together; the
            marginal likelihood may give them less). ``0`` leaves them out there (the default
            before the cap: auto from 2.5 pairs per player), ``1`` weighs them by likelihood
            alone from ``nngp_from`` pairs per player. Where the member runs on the first
            layer's Gram (``nngp_first_layer_used``), ``nngp_first_layer_cap`` caps it instead
            (``nngp_cap`` then only sets where the kernels join: ``0``, from 2.5 pairs per
            player). default=0.5.
        nngp_from: with ``nngp=None`` and ``nngp_cap > 0``, the pairs per player from which
            the NNGP kernels join the model average (with their weight capped at ``nngp_cap``
            below 2.5 pairs per player). ``1`` is the rule before the ninth round of issue #14;
            ``0`` (from the first pair) lowered the error of every cell it reaches (real calls,
            10 points x 2 seeds, error after / before, the other cells bit for bit): of the
            accuracy benchmark's 48 cells at 64-512 evaluations it reaches one, the fresh tanh32
            logit at 64 (31 pairs of 32 players): x0.929 over 6 seeds, every seed lower, ratio
            to the best anchor (Captum's KernelShap) .524 -> .488 at the benchmark's 2 seeds,
            .557 -> .517 over 6; at 32-48 evaluations x0.64-0.91 on the 12 cells of its twelve
            games it reaches (breast-cancer MLP logit x0.66 / 0.64 at 32 / 48, its logistic
            regression x0.82 / 0.85, mlp20 logit x0.65, digits MLP logit x0.69, ReLU 18 logit
            x0.74, tanh 20 logit x0.76, tanh32 logit x0.83 / 0.84, tanh16 x0.91, digits logistic
            regression x0.78); on the guard games of stop 27, held out (random tanh 40
            probability, an MLP on 8 x 8 digits' logit, random ReLU 100 logit), x0.80, 0.72,
            0.88 at 64 / 128 / 128 evaluations (0.5-1 pair per player, 6 seeds) and x0.80,
            0.61, 0.90 at 48 / 64 / 64 (below 0.5). Coverage within 2 sd rose where it acts
            (tanh32 logit at 64, 6 seeds: 0.973 -> 0.982; those guard cells 0.961 / 1.000 /
            0.966 -> 0.989 / 1.000 / 0.981; 0.93-1.00 -> 0.97-1.00 at 32-48). Cost: 0.4-1.2 s of
            CPU per explained output instead of 0.02-0.05 where it now runs (one thread each).
            default=0.0.
        singletons_after: below 3.5 pairs per player, where this share of the pairs and all
            ``n`` singleton pairs fit, the optimal design takes this share from the default
            design's first greedy picks (middle sizes), then continues greedily with no
            main-effect term in the design prior, which takes every singleton pair
            ``({i}, N minus {i})`` next (``attr.extra["design_head_pairs"]``); ``0`` keeps the
            default design everywhere. Fixed before any value is seen. At 0.25, error after /
            before (10 points x 2 seeds): wine@64 x1.030 (x0.956 over 4 seeds), diabetes@64
            x0.84, tanh16@64 x0.96, mlp20@64 x0.95, mlp20@128 x0.85, relu14@64 x0.95,
            digits@64 x0.96, breast-cancer MLP logit@128 x0.93, breast-cancer logistic
            regression@128 x0.58 (cells within 0.5x the best anchor 21 -> 25 of 32; the 23
            others, and the breast-cancer games at 64, unchanged bit for bit); on the eight
            games of earlier rounds x0.55-1.00 except a ReLU network at 20 inputs, x1.10 at 64
            evaluations (x0.87 at 128); on three games built before the rule was chosen (ReLU
            18 inputs logit, saturated tanh 16 inputs, breast-cancer MLP probability 19
            inputs) x0.57-0.87 at 64 and x1.03 at 128. Cost: a second greedy pass (0.03-0.7 s at
            31-63 pairs of 13-30 players). Only up to 32 players (the range it was measured
            on); larger games keep the default design. default=0.25.
        nngp_first_layer: where the NNGP kernels run and the model is a
            ``torch.nn.Sequential`` whose first module is a ``torch.nn.Linear`` on the players'
            input, their first-layer weight covariance is that layer's own ``W' W`` (scaled to
            mean diagonal one) instead of the identity: a prior shaped by the model's weights,
            read without a model call (``attr.params["nngp_first_layer_used"]``; a subclass
            of either with its own ``forward``, a forward pre-hook, or a hook on that Linear
            keep the isotropic kernels: the Gram would not be the players'). ``False`` keeps
            the isotropic kernels everywhere (the default before stop 46). Real calls on every
            cell of the accuracy benchmark (12 games x 64-512 evaluations, 10 points x 2 seeds,
            stop 46, issue #14) lowered the error on all 48 cells (geometric mean x0.804, worst
            x0.996; breast-cancer MLP logit x0.92 / 0.85 / 0.68 / 0.68 at 64-512, its logistic
            regression x0.50-0.27, digits x0.66-0.33, the random networks x0.88-0.99, wine
            x0.84-0.996), with coverage within 2 sd at 0.961-1.000 where the truth is exact;
            see the module docstring's "Stop 46". default=True.
        nngp_first_layer_cap: where the NNGP member runs on the first layer's ``W' W``
            (``nngp_first_layer_used``), the most it may weigh in the model average below 2.5
            pairs per player, in place of ``nngp_cap`` (which keeps capping the isotropic
            member); ``1`` weighs it by its marginal likelihood alone, ``0.5`` is the rule
            before stop 47. Replayed on the pairs of real calls (12 games, 10 points x 2 seeds,
            stop 47, issue #14): lower error on all 14 benchmark cells where the cap applied
            (breast-cancer logistic regression x0.12 / 0.44 at 64 / 128, breast-cancer MLP
            logit x0.94 / 0.82, the ReLU 18 logit at 64 x0.93, the tanh32 logit at 128 x0.88,
            the others x0.84-0.98), the 34 others unchanged bit for bit; cells within half the
            best anchor 41 -> 44 of 48; see the module docstring's "Stop 47". default=1.0.
        nngp_first_layer_live: where the member runs on the first layer's ``W' W`` and the
            module after that Linear is a plain ``torch.nn.ReLU`` (or ``ReLU6``), leave out of
            each explained point's Gram the rows whose pre-activation is at most 0 on every
            coalition of that point (``b_k + sum_i max(w_ki x_i, w_ki base_i) <= 0``: exact, no
            model call, each point's own box, so its values still depend on that point only):
            their ReLU is 0 on every input the game evaluates, yet ``W' W`` gave them full
            weight. ``attr.params["nngp_first_layer_live_used"]`` says whether any row was left
            out; where none is the shared Gram runs unchanged, bit for bit. A model whose first
            layer has 28 of 32 rows dead (10 players, enumerated truth, 3 points x 3 seeds x 5
            budgets): error x0.24-0.71 in 14 of 15 cells, x1.016 in one, as the same function with
            those rows deleted; the accuracy benchmark's cells with dead rows (the digits MLP
            logit, 23 of 64 rows dead at every point) x0.988-0.996, the others x0.999-1.001; see
            the module docstring's "Stop 48". ``False``: the Gram of every row. default=True.
        lean: the hyperparameter search: ``None`` chooses by the cost rule above, ``False``
            pins the full search, ``True`` the lean one (both on the design ``allocation``
            says). default=None.
        timed: whether the cost rule (``lean=None``) reads the model's measured seconds;
            ``False`` prices the model at 0 s, so the path depends only on players, budget and
            samples x targets, never on the machine's speed or load (calls predicted within the
            2 s-per-output floor are unaffected; above it, an expensive model then gets the
            lean search or the hand-over its timing would have spared it). Dataset jobs set
            ``False`` unless told otherwise, so that a resumed job is byte-identical to an
            uninterrupted one. default=True.

    References: Rasmussen & Williams (2006), "Gaussian Processes for Machine Learning" (type-II
    ML, ARD); O'Hagan (1991), "Bayes–Hermite quadrature" (posterior of a linear functional);
    Fumagalli, Witter & Musco (2026), "PolySHAP: Extending KernelSHAP with Interaction-Informed
    Polynomial Regression" (interaction terms in the KernelSHAP fit); Chaloner & Verdinelli
    (1995), "Bayesian experimental design: a review" and Rundel et al. (2026), "ShaplEIG:
    Bayesian Experimental Design for Shapley Value Estimation" (the design); Witter, Liu & Musco
    (2025), "Regression-adjusted Monte Carlo Estimators for Shapley Values and Probabilistic
    Values" (the residual correction). The Walsh-kernel GP itself is tribute's construction.
    """

    name = "gp_shapley"
    tags = Tags(family="shapley", stochastic=True, has_gap=True, budgeted=True)
    paper = "tribute: Gaussian-process regression of the game in the Walsh basis (this library)"
    constraints = declare({"allocation": Options(_ALLOCATIONS),
                           "ard": InstanceOf((bool,), "True or False"),
                           "sign_kernel": InstanceOf((bool,), "True or False"),
                           "nngp": Options((None, True, False)),
                           "nngp_cap": Interval(float, 0.0, 1.0),
                           "nngp_first_layer": InstanceOf((bool,), "True or False"),
                           "nngp_first_layer_cap": Interval(float, 0.0, 1.0),
                           "nngp_first_layer_live": InstanceOf((bool,), "True or False"),
                           "nngp_from": Interval(float, 0.0, _NNGP_PAIRS_PER_PLAYER),
                           "singletons_after": Interval(float, 0.0, 1.0),
                           "max_pairs": Interval(int, 2),
                           "max_solve_flops": Interval(float, 0.0),
                           "lean": Options((None, True, False)),
                           "timed": InstanceOf((bool,), "True or False")})
    # the cost rule's path must not depend on the machine's speed in a dataset job
    reproducible: ClassVar[Mapping[str, Any]] = MappingProxyType({"timed": False})

    def __init__(self, allocation: str = "optimal", ard: bool = True, max_pairs: int = 1024,
                 max_solve_flops: float = 1e11, sign_kernel: bool = True,
                 nngp: bool | None = None, nngp_cap: float = 0.5, lean: bool | None = None,
                 timed: bool = True, singletons_after: float = 0.25,
                 nngp_from: float = 0.0, nngp_first_layer: bool = True,
                 nngp_first_layer_cap: float = 1.0, nngp_first_layer_live: bool = True) -> None:
        self.nngp_first_layer = nngp_first_layer
        self.nngp_first_layer_live = nngp_first_layer_live
        self.nngp_first_layer_cap = nngp_first_layer_cap
        self.singletons_after = singletons_after
        self.allocation = allocation
        self.lean = lean
        self.timed = timed
        self.nngp = nngp
        self.nngp_cap = nngp_cap
        self.nngp_from = nngp_from
        self.ard = ard
        self.sign_kernel = sign_kernel
        self.max_pairs = max_pairs
        self.max_solve_flops = max_solve_flops

    def solve_flops(self, n: int, budget: int, outputs: int) -> float:
        """Arithmetic of the GP fits for ``outputs`` explained scalars (samples x targets) of
        ``n`` players at ``budget`` evaluations (the rule of ``max_solve_flops``).

        Per fit on ``K`` pair rows, per kernel: a Cholesky factorisation (``K^3 / 3``), the
        triangular solves of the ``K x n`` Shapley terms (``K^2 n``, counted three times: these
        ``K x n`` passes are memory-bound; calibrated on benchmarks/bench_gp_shapley_scaling.py,
        where 1,024 players ran ~2.5x slower per counted flop than 13) and those terms themselves
        (``8 Q K n``, ``Q`` quadrature nodes), the kernel (``4 K^2``). Kernels: the 15 isotropic
        ones shared by every output and 3 ARD ones per output, on ``min(pairs, 256)`` pairs;
        beyond 256 pairs, on every pair, up to 4 isotropic kernels per output (at most 15)
        and 2 ARD kernels per output. With ``nngp=None`` (auto) the NNGP kernels count where
        the call would run them: where they are wanted and fit the per-output floor, and not
        when the batch's fits with them exceed ``max_solve_flops`` (auto then leaves them out).
        """
        return self._price(n, budget, outputs, can_run=True)[1]

    def _cost(self, n: int, budget: int, outputs: int, *, lean: bool = False,
              design: bool = True, nngp: bool | None = None) -> tuple[float, int]:
        """``(flops, factorisations)`` of a call on the full (``lean=False``) or lean path, with
        or without the design (after the model rows, only the fits remain to be paid).

        Beyond the fit cap (``max_pairs``, lean or not) the regression
        adjustment adds a prediction at the held-out pairs and a paired regression; with
        ``nngp`` (default: the method's ``nngp``; never on the lean path, which leaves them
        out) each output adds the NNGP member on up to 256 pairs (:func:`_nngp_flops`).
        """
        m = max(1, (int(budget) - 2) // 2)
        if n < 63:
            m = max(1, min(m, 2 ** (n - 1) - 1))
        cap = int(self.max_pairs)
        fits = [m] if m <= cap else ([cap] if m >= 2 * cap else [m // 2, m - m // 2])
        grid = _LEAN if lean else _FULL
        q = min(max(n // 2 + 2, 8), 24)
        use_nngp = (self._nngp_wanted(n, m) if nngp is None else nngp) and not lean

        def per_kernel(k: int) -> float:
            return k**3 / 3 + 3.0 * k * k * n + 8.0 * q * k * n + 4.0 * k * k

        total = design_flops(n, m) if design and self._design(n, m) == "optimal" else 0.0
        if total and self._mixed_pairs(n, m):  # the mixed design's second greedy pass
            total += design_flops(n, m - self._mixed_pairs(n, m))
        count = 0
        for fit in fits:
            small = min(fit, grid.search) + 1
            kern = len(grid.iso) + (len(grid.ard) * outputs if self.ard else 0)
            total += kern * per_kernel(small)
            count += kern
            if fit > grid.search:
                kern = (min(len(grid.iso), grid.keep_iso * outputs)
                        + (grid.keep_ard * outputs if self.ard else 0))
                total += kern * per_kernel(fit + 1)
                count += kern
            if self.sign_kernel and n >= 3 and fit == m and m <= _SIGN_PAIRS_PER_PLAYER * n:
                total += outputs * per_kernel(fit + 1)
                count += outputs
            if use_nngp and fit == m and m <= _NNGP_MAX_PAIRS:
                from ._nngp import GRID

                total += outputs * _nngp_flops(n, fit + 1)
                count += outputs * len(GRID)
        if m > cap:
            total += outputs * (m * (cap + 1) * (2.0 * n + 8.0) + m * n * n)
        return float(total), count

    def solve_seconds(self, n: int, budget: int, outputs: int, *, lean: bool = False,
                      design: bool = True, nngp: bool | None = None) -> float:
        """Predicted CPU seconds of the estimator's own work (the path rule's estimate, not a
        measurement): :meth:`_cost`'s flops at ``_FLOPS_PER_SECOND`` plus
        ``_SECONDS_PER_FIT`` per factorisation (the per-kernel work that flops miss at small
        sizes: quadratures, kernel build, Python), and for the optimal design
        ``_SECONDS_PER_POOL_ENTRY`` per entry of its ``candidates x n`` pool (drawing it and its
        Shapley terms, which :func:`._gp_design.design_flops` does not count: 0.8 s of a 0.9 s
        design at 31 pairs of 1,024 players)."""
        flops, fits = self._cost(n, budget, outputs, lean=lean, design=design, nngp=nngp)
        out = flops / _FLOPS_PER_SECOND + _SECONDS_PER_FIT * fits
        m = max(1, (int(budget) - 2) // 2)
        if n < 63:
            m = max(1, min(m, 2 ** (n - 1) - 1))
        if design and self._design(n, m) == "optimal":
            out += _SECONDS_PER_POOL_ENTRY * pool_size(n, m) * n
        return out

    def _nngp_wanted(self, n: int, pairs: int) -> bool:
        """Whether ``nngp`` asks for the NNGP kernels at ``pairs`` pairs of ``n`` players, before
        the game's kind and the cost rule: ``True`` up to ``_NNGP_MAX_PAIRS`` pairs, ``None``
        (auto) from ``nngp_from * n`` pairs (and one pair) to ``_NNGP_MAX_PAIRS`` (below
        ``_NNGP_PAIRS_PER_PLAYER * n`` with a capped weight, :meth:`_nngp_share`)."""
        if self.nngp is None:
            low = float(self.nngp_from) if self.nngp_cap > 0 else _NNGP_PAIRS_PER_PLAYER
            return max(1.0, low * n) <= pairs <= _NNGP_MAX_PAIRS
        return bool(self.nngp) and pairs <= _NNGP_MAX_PAIRS

    def _nngp_share(self, n: int, pairs: int, gram: bool = False) -> float | None:
        """The cap on the NNGP member's weight in the model average where auto adds it below
        ``_NNGP_PAIRS_PER_PLAYER`` pairs per player (``nngp_cap``, or ``nngp_first_layer_cap``
        where the member runs on the first layer's Gram, ``gram``); ``None`` (weighed by its
        marginal likelihood alone) elsewhere, with a cap of 1 and whenever ``nngp`` is
        pinned."""
        cap = float(self.nngp_first_layer_cap if gram else self.nngp_cap)
        if self.nngp is None and pairs < _NNGP_PAIRS_PER_PLAYER * n and cap < 1:
            return cap
        return None

    def _mixed_pairs(self, n: int, pairs: int) -> int:
        """Pairs the mixed design takes from the default design before the singleton pairs
        (``singletons_after`` of them; 0: the default design): below ``_MIX_PAIRS_PER_PLAYER``
        pairs per player, where those pairs and all ``n`` singleton pairs fit."""
        if pairs >= _MIX_PAIRS_PER_PLAYER * n or n > _MIX_MAX_PLAYERS:
            return 0
        k = round(self.singletons_after * pairs)
        return k if k >= 1 and k + n <= pairs else 0

    def _design(self, n: int, pairs: int) -> str:
        """The design that runs: ``"optimal"`` falls back to ``"singletons"`` beyond
        ``max_pairs`` pairs (the regression adjustment needs a random, stratified design) and
        beyond ``_OPTIMAL_SHARE`` of all pairs (there the greedy design left the posterior
        standard errors too small: 74-89% of errors within 2 sd at 349 of 511 pairs on
        10-player MLPs, against 82-96% for the sampled design)."""
        if self.allocation != "optimal":
            return str(self.allocation)
        if pairs > self.max_pairs or (n < 63 and pairs > _OPTIMAL_SHARE * (2 ** (n - 1) - 1)):
            return "singletons"
        return "optimal"

    def min_budget(self, game: Game) -> int:
        return int(min(2**game.n_players, 6))

    def default_budget(self, game: Game) -> int:
        return _gp_budget(game.n_players)

    def exact_at(self, n_players: int, budget: int | None) -> bool:
        n = int(n_players)
        return n == 1 or int(budget if budget is not None else _gp_budget(n)) >= 2**n

    def attribute(self, game: Game, *, budget: int | None = None, seed: int = 0) -> Attribution:
        n = game.n_players
        budget = int(budget if budget is not None else self.default_budget(game))
        params = self.get_params()
        params["nngp_used"] = False  # every path says whether the NNGP kernels ran
        params["nngp_first_layer_used"] = False
        params["nngp_first_layer_live_used"] = False
        if self.exact_at(n, budget):
            params["path"] = "exact"
            phi, table = _exact_table(game)
            gap = phi.sum(-1) - (table[..., -1] - table[..., 0])
            return game.attribution(phi, self.name, params, stderr=torch.zeros_like(phi), gap=gap,
                                    extra={"n_pairs": 2 ** max(n - 1, 0) - 1})
        outputs = int(game.n_samples) * int(game.n_targets)
        pairs = (budget - 2) // 2 if n >= 63 else int(min((budget - 2) // 2, 2 ** (n - 1) - 1))
        use_nngp, flops = self._priced(game, budget, outputs)
        if flops > float(self.max_solve_flops) and budget >= n + 2:
            note = (f"gp_shapley handed over to kernel_shap: its fits would take ~{flops:.2g} "
                    f"flops (> max_solve_flops={float(self.max_solve_flops):.2g}); pass "
                    "max_solve_flops=float('inf') to keep the GP")
            return self._hand_over(game, budget, seed, params, note, {"solve_flops": flops})
        had_empty = game.peek_empty() is not None
        t0 = time.perf_counter()
        delta = game.full() - game.empty()  # B x T
        t_empty = None if had_empty else time.perf_counter() - t0
        # the path rule, before the design (see the class docstring): the model's seconds for
        # this call from its measured throughput, else from the one-row-per-sample pass above
        rule: dict[str, Any] = {}
        lean, sampled = bool(self.lean), False
        if self.lean is None:
            per_eval = _seconds_per_eval(game, t_empty) if self.timed else 0.0
            model_s = None if per_eval is None else per_eval * (budget - 1)
            rule, use_nngp = self._path(n, budget, outputs, model_s, design=True, nngp=use_nngp)
            if rule["path"] == "kernel_shap":
                info = {k: v for k, v in rule.items() if k not in ("note", "note_lean")}
                return self._hand_over(game, budget, seed, params, rule["note"], {"cost_rule": info})
            lean, sampled = rule["path"] == "gp-lean", bool(rule.get("sampled", False))
        b, t = delta.shape
        gen = torch.Generator().manual_seed(seed)
        design = self._design(n, pairs)
        if sampled and design == "optimal":
            design = "singletons"
        params["design"] = design
        sampler = PairSampler(n, "leverage" if design == "leverage" else "kernel", gen)
        k_mix = self._mixed_pairs(n, pairs) if design == "optimal" else 0
        if k_mix:
            head, _, tail = mixed_designs(n, pairs, k_mix, gen, alt_tau=_MIX_TAU)
            s = torch.cat([head, tail])
            counts = _size_counts(s, n)
        elif design == "optimal":
            s = optimal_pairs(n, pairs, gen)
            counts = _size_counts(s, n)
        else:
            if design == "singletons":
                # every pair ({i}, N minus {i}) first, then the Shapley-kernel allocation: the
                # water-filling allocation fills a stratum whose share exceeds its size
                sampler.mass = sampler.mass.copy()
                sampler.mass[0] *= 1e9
            sampler.grow(pairs)
            s = sampler.s
            counts = torch.from_numpy(sampler.counts())
        m = s.shape[0]
        t0 = time.perf_counter()
        d, e = _pair_values(game, s)  # B x T x m each
        if self.lean is None and not lean and self.timed:
            # after the model rows: their measured seconds decide whether the full search
            # still fits (the design is paid; only a leaner fit can be chosen now)
            model_s = time.perf_counter() - t0 + (t_empty or 0.0)
            rule, use_nngp = self._path(n, budget, outputs, model_s, design=False, nngp=use_nngp)
            lean = rule["path"] != "gp"
            if lean:
                rule["path"] = "gp-lean"
                rule["note"] = rule["note_lean"]
        dflat, dl = d.reshape(b * t, m), delta.reshape(-1)
        even = e.reshape(b * t, m), (game.full() + game.empty()).reshape(-1)
        extra: dict[str, Any] = {"n_pairs": m, "pairs_per_size": counts.tolist()}
        if k_mix:
            extra["design_head_pairs"] = k_mix  # the default design's picks before the singletons
        cap = int(self.max_pairs)
        stem = "gp-lean" if lean else "gp"
        adjusted = self._adjusted(sampler, dflat, dl, gen, b, t, cap, lean) if m > cap else None
        if m > cap and adjusted is None:
            extra["note"] = (f"gp_shapley fitted its GP on all {m} pairs (> max_pairs={cap}): the "
                             "held-out pairs of the regression adjustment were too few for a "
                             f"paired correction of {n} players (no residual degrees of freedom)")
        if adjusted is None:
            params["path"] = stem
            composed = composed_inputs(game) if use_nngp and not lean else None
            if composed is not None:
                composed = (composed[0].repeat_interleave(t, 0), composed[1].repeat_interleave(t, 0))
            params["nngp_used"] = composed is not None and m <= _NNGP_MAX_PAIRS
            gram = (first_layer_of(game, composed, self.nngp_first_layer_live)
                    if self.nngp_first_layer and params["nngp_used"] else None)
            params["nngp_first_layer_used"] = gram is not None
            # one Gram per column where dead ReLU rows were left out (nngp_first_layer_live)
            params["nngp_first_layer_live_used"] = gram is not None and gram.dim() == 3
            phi, var, lam, _, _ = gp_shapley_fit(s, dflat, dl, ard=self.ard,
                                                 sign=self.sign_kernel, even=even,
                                                 composed=composed, nngp_seed=seed, lean=lean,
                                                 nngp_share=self._nngp_share(n, m, gram is not None),
                                                 nngp_gram=gram)
            stderr = var.sqrt()
        else:
            params["path"] = stem + "+adjustment"
            phi, stderr, lam = adjusted
            extra["gp_pairs"] = cap if m >= 2 * cap else m // 2
            extra["cross_fitted"] = m < 2 * cap
        notes = [extra.pop("note")] if "note" in extra else []
        if rule:
            extra["cost_rule"] = {k: v for k, v in rule.items() if k not in ("note", "note_lean")}
            if lean:
                notes.insert(0, rule["note"])
        elif lean:
            notes.insert(0, "gp_shapley ran its lean search (lean=True)")
        if notes:
            extra["note"] = "; ".join(notes)
        extra["kernel_lambda"] = lam.reshape(b, t, n).numpy()
        phi = phi.reshape(b, t, n)
        return game.attribution(phi, self.name, params, stderr=stderr.reshape(b, t, n),
                                gap=game.efficiency_gap(phi), extra=extra)

    def _priced(self, game: Game, budget: int, outputs: int) -> tuple[bool, float]:
        """``(NNGP kernels asked for, flops)`` of the call before the cost rule: the kernels
        count only where they can run (a single composed baseline, :meth:`_nngp_wanted`), a
        pinned ``lean=True`` is priced as the lean search; auto (``nngp=None``) leaves the
        kernels out rather than hand over to ``kernel_shap`` (``max_solve_flops``)."""
        return self._price(int(game.n_players), budget, outputs,
                           can_run=composed_inputs(game) is not None)

    def _price(self, n: int, budget: int, outputs: int, *, can_run: bool) -> tuple[bool, float]:
        """:meth:`_priced` without the game (``can_run``: one composed baseline per sample)."""
        pairs = (budget - 2) // 2 if n >= 63 else int(min((budget - 2) // 2, 2 ** (n - 1) - 1))
        use = self._nngp_wanted(n, pairs) and can_run
        if self.nngp is None and use:
            # auto decides per explained output, so neither the batch nor the model's timing
            # moves it: the full search with the kernels must fit the cost rule's floor for one
            # output (then it fits any batch's allowance, whose floor grows per output)
            use = self.solve_seconds(n, budget, 1, nngp=True) <= _FLOOR_SECONDS
        flops = self._cost(n, budget, outputs, lean=self.lean is True, nngp=use)[0]
        if self.nngp is None and use and flops > float(self.max_solve_flops):
            use = False
            flops = self._cost(n, budget, outputs, lean=self.lean is True, nngp=False)[0]
        return use, flops

    def _path(self, n: int, budget: int, outputs: int, model_s: float | None, *,
              design: bool, nngp: bool) -> tuple[dict[str, Any], bool]:
        """:meth:`_rule`, and whether the NNGP kernels still run: auto (``nngp=None``) leaves
        them out where the full search fits the allowance only without them."""
        rule = self._rule(n, budget, outputs, model_s, design=design, nngp=nngp)
        if self.nngp is None and nngp and rule["path"] != "gp":
            return self._rule(n, budget, outputs, model_s, design=design, nngp=False), False
        return rule, nngp

    def _rule(self, n: int, budget: int, outputs: int, model_s: float | None, *,
              design: bool, nngp: bool) -> dict[str, Any]:
        """The path the time rule picks: the first of the full search, the lean search (after
        the optimal design, if ``design``: it is still to be made) and the lean search on the
        sampled design (``"sampled": True``) whose predicted seconds (:meth:`solve_seconds`)
        fit the allowance ``max(_FLOOR_SECONDS * outputs, _MODEL_MULTIPLE * model_s)``, else
        ``"kernel_shap"`` (the last lean one where the budget is below ``kernel_shap``'s
        ``n + 2``). ``model_s`` ``None`` (not measured): no allowance, the full path."""
        full = self.solve_seconds(n, budget, outputs, design=design, nngp=nngp)
        lean = self.solve_seconds(n, budget, outputs, lean=True, design=design)
        bare = self.solve_seconds(n, budget, outputs, lean=True, design=False)
        allow = (float("inf") if model_s is None
                 else max(_FLOOR_SECONDS * outputs, _MODEL_MULTIPLE * model_s))
        out: dict[str, Any] = {"model_seconds": model_s, "allowance_seconds": allow,
                               "predicted_gp_seconds": full, "predicted_lean_seconds": lean,
                               "predicted_lean_sampled_seconds": bare}
        why = (f"predicted ~{full:.2g} s for the full search > allowance {allow:.2g} s "
               f"(max({_FLOOR_SECONDS:g} s x {outputs} outputs, {_MODEL_MULTIPLE:g} x the model's "
               f"~{model_s or 0.0:.2g} s for this call))")
        pin = "; pass lean=False to keep the full search (lean=True pins the lean one)"
        out["note_lean"] = f"gp_shapley ran its lean search: {why}{pin}"
        if full <= allow:
            out["path"] = "gp"
        elif lean <= allow:
            out["path"], out["note"] = "gp-lean", out["note_lean"]
        elif bare <= allow or budget < n + 2:
            out["path"], out["sampled"] = "gp-lean", True
            out["note"] = (f"gp_shapley ran its lean search on a sampled design: {why}, and "
                           f"~{lean:.2g} s with the optimal design{pin}")
        else:
            out["path"] = "kernel_shap"
            out["note"] = (f"gp_shapley handed over to kernel_shap: {why}, and ~{bare:.2g} s "
                           f"for the lean one{pin}")
        return out

    def _hand_over(self, game: Game, budget: int, seed: int, params: dict[str, Any],
                   note: str, info: dict[str, Any]) -> Attribution:
        """``kernel_shap`` on the same budget, labelled as this method's ``"kernel_shap"`` path."""
        from .shapley_sampling import KernelShap

        params["path"] = "kernel_shap"
        a = KernelShap().attribute(game, budget=budget, seed=seed)
        return dataclasses.replace(a, method=self.name, params=params,
                                   extra={**a.extra, "note": note, **info})

    def _adjusted(self, sampler: PairSampler, d: torch.Tensor, delta: torch.Tensor,
                  gen: torch.Generator, b: int, t: int, cap: int, lean: bool,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Regression adjustment for budgets above ``max_pairs`` pairs.

        With ``m >= 2 * max_pairs`` pairs: the GP is fitted on ``max_pairs`` random pairs (set
        A) and corrected by paired KernelSHAP on the residuals of the others (set B, held out,
        so the correction and its standard error are honest). Between ``max_pairs`` and
        ``2 * max_pairs`` pairs: two halves, each fitted and corrected by the other, averaged
        (cross-fitting).

        ``None`` where a held-out set has fewer than ``n`` pairs in strata that are not fully
        enumerated: the paired correction (``n - 1`` free values) would have no residual
        degrees of freedom, so NaN standard errors for every player and a correction fitted
        on fewer pairs than players (40 players, 50 pairs, ``max_pairs=30``, a game whose odd
        part is linear: max error 0.027 against 6e-9 for the GP on every pair; 1 seed in 6 of
        6 players at 14 pairs and ``max_pairs=4``). The caller then fits the GP on every pair.
        """
        m, n = sampler.m, sampler.s.shape[1]
        sampled = ~sampler.complete()
        perm = torch.randperm(m, generator=gen)
        if m >= 2 * cap:
            ia, ib = perm[:cap].sort().values, perm[cap:].sort().values
            if int(sampled[ib].sum()) < n:
                return None
            return self._fit_correct(sampler, d, delta, ia, ib, b, t, lean)
        half = m // 2
        ia, ib = perm[:half].sort().values, perm[half:].sort().values
        if min(int(sampled[ia].sum()), int(sampled[ib].sum())) < n:
            return None
        p1, s1, lam = self._fit_correct(sampler, d, delta, ia, ib, b, t, lean)
        p2, s2, _ = self._fit_correct(sampler, d, delta, ib, ia, b, t, lean)
        # stderr as if the two halves' errors were independent (calibrated within ~10% in
        # the wine/diabetes/breast-cancer checks of the benchmark's development)
        return (p1 + p2) / 2, (s1**2 + s2**2).sqrt() / 2, lam

    def _fit_correct(self, sampler: PairSampler, d: torch.Tensor, delta: torch.Tensor,
                     ia: torch.Tensor, ib: torch.Tensor, b: int, t: int, lean: bool = False,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GP on pairs ``ia``, corrected by paired KernelSHAP on the residuals of pairs ``ib``.
        The GP interpolates A, so A's residuals are known zeros: each stratum's residual total
        is estimated from B over the pairs not in A."""
        s, stratum = sampler.s, sampler.stratum
        n = s.shape[1]
        # the best kernel's own posterior, so that the residuals below are that fit's
        phi_gp, _, lam, tau, alpha = gp_shapley_fit(s[ia], d[:, ia], delta, ard=self.ard, average=False,
                                                     lean=lean)
        resid = d[:, ib] - gp_predict(s[ia], s[ib], lam, tau, alpha)
        h_count = len(sampler.strata)
        count_a = torch.bincount(stratum[ia], minlength=h_count).numpy()
        count_b = torch.bincount(stratum[ib], minlength=h_count).numpy()
        sizes = sampler.sizes()
        pop_b = sizes - count_a
        mu = np.array([st.mu for st in sampler.strata])
        # mu_k * (pairs not in A); a stratum beyond a float's range: its whole mass (A is nothing)
        total_b = np.where(sizes >= HUGE_STRATUM, sampler.masses(), mu * pop_b)
        w_b = torch.from_numpy(total_b / np.maximum(count_b, 1))[stratum[ib]]
        w_a = torch.from_numpy(mu)[stratum[ia]]
        rows = torch.cat([s[ib], s[ia]])
        weights = torch.cat([w_b, w_a])
        r = torch.cat([resid, torch.zeros(d.shape[0], len(ia), dtype=torch.float64)], dim=1)
        strata = torch.cat([stratum[ib], h_count + stratum[ia]])
        counts = np.concatenate([count_b, count_a])
        sizes = np.concatenate([pop_b, count_a]).astype(np.float64)
        fit = paired_wls(rows, weights, r.reshape(b, t, -1), torch.zeros(b, t, dtype=torch.float64),
                         strata, counts, sizes)
        return phi_gp + fit.phi.reshape(b * t, n), fit.stderr.reshape(b * t, n), lam

    budget_rule = "min(2^n, 2048)"

    def estimate_cost(self, game: Game, budget: int | None) -> Cost:
        """Pairs ``m = (budget - 2) / 2`` of ``n`` players; per sample and target a GP on up to
        ``max_pairs`` pairs (``m' x m'`` kernel matrices, arithmetic from :meth:`solve_flops`);
        ``kernel_shap``'s cost where that arithmetic exceeds ``max_solve_flops`` (hand-over);
        the ``2^n`` table when the budget covers every coalition."""
        n = int(game.n_players)
        k = int(budget if budget is not None else self.default_budget(game))
        b, t = int(game.n_samples), int(game.n_targets)
        if n < 63 and k >= 2**n:
            return coalition_cost(game, 2**n, design=2 * b * 2**n * t * 8,
                                  note=f"the 2^{n}-coalition table")
        use_nngp, flops = self._priced(game, k, b * t)
        from .shapley_sampling import KernelShap

        if flops > float(self.max_solve_flops) and k >= n + 2:
            return KernelShap().estimate_cost(game, k)
        note = ""
        if self.lean is None:
            # the path rule as it runs when the model is cheap (its seconds unknown here: the
            # floor alone); an expensive model keeps a fuller search, whose cost its rows dominate
            rule, use_nngp = self._path(n, k, b * t, 0.0, design=True, nngp=use_nngp)
            if rule["path"] == "kernel_shap":
                return KernelShap().estimate_cost(game, k)
            if rule["path"] == "gp" and not use_nngp:
                flops = self._cost(n, k, b * t, nngp=False)[0]
            if rule["path"] == "gp-lean":
                flops = self._cost(n, k, b * t, lean=True,
                                   design=not rule.get("sampled", False))[0]
                note = " (lean search" + (" on a sampled design)" if rule.get("sampled") else ")")
        elif self.lean:
            note = " (lean search)"
        m = max(1, (k - 2) // 2)
        fit = min(m, int(self.max_pairs) if isinstance(self.max_pairs, int) else 1024)
        return coalition_cost(game, 2 * m + 2, design=4 * m * n * 8 + 2 * b * t * m * 8,
                              solve=4 * fit * fit * 8 + 4 * fit * n * 8, flops=flops,
                              note=f"{m:,} pairs x {n:,} players and {fit:,}^2 kernel matrices{note}")


# The most accurate estimator per evaluation in benchmarks/bench_shapley_accuracy.py.
alias("shapley", "gp_shapley")

