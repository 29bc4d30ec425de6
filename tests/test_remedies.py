"""The remedies' per-class numbers against hand computations, and the phases each remedy trains through."""

import functools
import inspect
import math

import numpy as np
import paddle
import pytest

from stages.lib import losses
from stages.lib.data import NUM_CLASSES
from stages.lib.params import ParamsError, read_params
from stages.lib.remedies import (REMEDIES, ClassBalancedParams, CrossEntropyParams, CrtParams, FocalCurriculumParams,
                                 FocalParams, LdamDrwParams, LogitAdjustedParams, Phase, class_balanced_weights,
                                 ldam_margins)
from stages.lib.variants import load_variants

# Three classes of 1, 10 and 100 images.
COUNTS = np.array([1, 10, 100])
# beta = 0.9: (1 - beta) / (1 - beta^n) = 0.1 / 0.1 = 1, 0.1 / (1 - 0.3486784401) = 0.153534 and
# 0.1 / (1 - 2.65614e-5) = 0.100003; they sum to 1.253537, and times 3 / 1.253537 they sum to 3.
WEIGHTS_BETA_0_9 = np.array([2.393229, 0.367442, 0.239329])


# --- per-class numbers ------------------------------------------------------------------------------------------

def test_class_balanced_weights_by_hand():
    weights = class_balanced_weights(COUNTS, beta=0.9)
    np.testing.assert_allclose(weights, WEIGHTS_BETA_0_9, rtol=2e-6)
    assert weights.sum() == pytest.approx(3, rel=1e-12)


def test_class_balanced_weights_near_beta_1_approach_inverse_frequency():
    # E_n = (1 - beta^n) / (1 - beta) -> n as beta -> 1: weights 100 : 10 : 1, to within 0.5%.
    weights = class_balanced_weights(COUNTS, beta=0.9999)
    assert weights[0] / weights[1] == pytest.approx(10, rel=5e-3)
    assert weights[1] / weights[2] == pytest.approx(10, rel=5e-3)


def test_class_balanced_weights_with_beta_0_are_ones():
    np.testing.assert_array_equal(class_balanced_weights(COUNTS, beta=0.0), np.ones(3))


def test_class_balanced_weights_of_an_absent_class_are_finite():
    # An absent class counts as one image: the same weights as COUNTS.
    weights = class_balanced_weights(np.array([0, 10, 100]), beta=0.9)
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights, WEIGHTS_BETA_0_9, rtol=2e-6)
    assert np.isfinite(class_balanced_weights(np.array([0, 10, 100]), beta=0.0)).all()


def test_ldam_margins_by_hand():
    # n^(-1/4) of 1, 16, 81, 10000 is 1, 1/2, 1/3, 1/10; the rarest class gets max_margin = 0.5.
    np.testing.assert_allclose(ldam_margins(np.array([1, 16, 81, 10000]), max_margin=0.5),
                               [0.5, 0.25, 0.5 / 3, 0.05], rtol=1e-12)
    # Without a class of one image: 16^(-1/4) = 1/2 is the largest, scaled to max_margin.
    np.testing.assert_allclose(ldam_margins(np.array([81, 16]), max_margin=0.3), [0.2, 0.3], rtol=1e-12)


def test_ldam_margins_of_an_absent_class_are_finite():
    margins = ldam_margins(np.array([0, 16]), max_margin=0.5)
    np.testing.assert_allclose(margins, [0.5, 0.25], rtol=1e-12)


# --- phases -----------------------------------------------------------------------------------------------------

def test_cross_entropy_is_one_plain_phase():
    assert REMEDIES["cross_entropy"].phases(CrossEntropyParams(), 7, COUNTS) == [Phase(losses.cross_entropy, 7)]


def test_focal_is_one_phase_with_its_gamma():
    assert REMEDIES["focal"].phases(FocalParams(gamma=2.0), 5, COUNTS) == [
        Phase(losses.focal_loss, 5, {"gamma": 2.0, "detach_factor": False})]
    assert REMEDIES["focal"].phases(FocalParams(gamma=2.0, detach_factor=True), 5, COUNTS) == [
        Phase(losses.focal_loss, 5, {"gamma": 2.0, "detach_factor": True})]


def test_focal_curriculum_is_one_phase_per_gamma_in_order():
    curriculum = FocalCurriculumParams(gammas=(0.2, 5.0, 2.0), epochs_per_gamma=3)
    assert REMEDIES["focal_curriculum"].phases(curriculum, None, COUNTS) == [
        Phase(losses.focal_loss, 3, {"gamma": gamma, "detach_factor": False}) for gamma in (0.2, 5.0, 2.0)]


def test_only_the_focal_curriculum_sets_its_own_length():
    assert {name for name, remedy in REMEDIES.items() if remedy.fixed_length} == {"focal_curriculum"}


def test_class_balanced_is_weighted_cross_entropy_with_the_hand_weights():
    (phase,) = REMEDIES["class_balanced"].phases(ClassBalancedParams(beta=0.9), 6, COUNTS)
    assert (phase.loss, phase.epochs, list(phase.options)) == (losses.weighted_cross_entropy, 6, ["class_weights"])
    assert isinstance(phase.options["class_weights"], tuple)
    np.testing.assert_allclose(phase.options["class_weights"], WEIGHTS_BETA_0_9, rtol=2e-6)


def test_logit_adjusted_is_one_phase_with_the_log_prior_and_tau():
    (phase,) = REMEDIES["logit_adjusted"].phases(LogitAdjustedParams(tau=1.5), 4, np.array([25, 75]))
    assert (phase.loss, phase.epochs, phase.options["tau"]) == (losses.logit_adjusted_loss, 4, 1.5)
    assert set(phase.options) == {"log_prior", "tau"}
    np.testing.assert_allclose(phase.options["log_prior"], [math.log(0.25), math.log(0.75)], rtol=1e-12)


LDAM_COUNTS = np.array([1, 16, 81])  # margins 0.5 * [1, 1/2, 1/3]


def ldam_params(drw_start: float) -> LdamDrwParams:
    return LdamDrwParams(max_margin=0.5, scale=30.0, drw_start=drw_start, beta=0.9)


def ldam_drw(drw_start: float, epochs: int = 10) -> list[Phase]:
    return REMEDIES["ldam_drw"].phases(ldam_params(drw_start), epochs, LDAM_COUNTS)


def test_ldam_drw_is_plain_ldam_then_class_balanced_ldam():
    plain, reweighted = ldam_drw(0.8)
    assert (plain.loss, plain.epochs, reweighted.loss, reweighted.epochs) == (losses.ldam_loss, 8, losses.ldam_loss, 2)
    for phase in (plain, reweighted):
        assert set(phase.options) == {"margins", "class_weights"}
        np.testing.assert_allclose(phase.options["margins"], [15.0, 7.5, 5.0], rtol=1e-12)  # 30 * margins
    assert plain.options["class_weights"] == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(reweighted.options["class_weights"], class_balanced_weights(LDAM_COUNTS, 0.9),
                               rtol=1e-12)
    assert reweighted.options["class_weights"][0] > 1 > reweighted.options["class_weights"][2]


@pytest.mark.parametrize("epochs, drw_start, plain_epochs", [(10, 0.8, 8), (5, 0.8, 4), (3, 0.34, 1), (7, 0.9, 6)])
def test_ldam_drw_splits_the_epochs_at_drw_start(epochs, drw_start, plain_epochs):
    assert [phase.epochs for phase in ldam_drw(drw_start, epochs)] == [plain_epochs, epochs - plain_epochs]


def test_ldam_drw_with_drw_start_1_never_reweights():
    (phase,) = ldam_drw(1.0)
    assert phase.epochs == 10 and phase.options["class_weights"] == (1.0, 1.0, 1.0)


def test_ldam_drw_with_drw_start_0_reweights_from_the_start():
    (phase,) = ldam_drw(0.0)
    assert phase.epochs == 10 and phase.options["class_weights"][0] > 1


def test_only_ldam_drw_asks_for_the_cosine_head_with_its_scale():
    assert REMEDIES["ldam_drw"].head_scale(ldam_params(0.8)) == 30.0
    others = {"cross_entropy": CrossEntropyParams(), "focal": FocalParams(gamma=2.0),
              "focal_curriculum": FocalCurriculumParams(gammas=(1.0,), epochs_per_gamma=1),
              "class_balanced": ClassBalancedParams(beta=0.9), "logit_adjusted": LogitAdjustedParams(tau=1.0),
              "crt": CrtParams(classifier_share=0.1)}
    assert set(others) | {"ldam_drw"} == set(REMEDIES)
    assert all(REMEDIES[name].head_scale(params) is None for name, params in others.items())


# --- Phase ------------------------------------------------------------------------------------------------------

def test_loss_fn_binds_the_loss_with_tuples_as_float32_tensors():
    phase = Phase(losses.logit_adjusted_loss, 2, {"log_prior": (math.log(0.25), math.log(0.75)), "tau": 1.5})
    loss_fn = phase.loss_fn()
    assert isinstance(loss_fn, functools.partial) and loss_fn.func is losses.logit_adjusted_loss
    assert set(loss_fn.keywords) == {"log_prior", "tau"}
    assert loss_fn.keywords["tau"] == 1.5 and isinstance(loss_fn.keywords["tau"], float)
    prior = loss_fn.keywords["log_prior"]
    assert isinstance(prior, paddle.Tensor) and prior.dtype == paddle.float32 and prior.shape == [2]
    np.testing.assert_allclose(prior.numpy(), [math.log(0.25), math.log(0.75)], rtol=1e-6)
    # Equal float32 logits: softmax([ln .25, ln .75] * 1.5)[0] = .25^1.5 / (.25^1.5 + .75^1.5) = 1 / (1 + 3^1.5).
    logits = paddle.to_tensor([[0.2, 0.2]], dtype="float32")
    loss = loss_fn(logits, paddle.to_tensor([0], dtype="int64"))
    assert loss.item() == pytest.approx(math.log(1 + 3 ** 1.5), rel=1e-6)


def test_loss_fn_of_a_plain_phase_is_the_bare_loss():
    loss_fn = Phase(losses.cross_entropy, 1).loss_fn()
    assert loss_fn.func is losses.cross_entropy and loss_fn.keywords == {}


def test_loss_fn_of_each_ldam_drw_phase_evaluates():
    labels = paddle.to_tensor([0, 2], dtype="int64")
    logits = paddle.to_tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]], dtype="float32")
    plain, reweighted = ldam_drw(0.8)
    # Image 0: true logit 1 - 15, image 1: 0.5 - 5; plain weights 1, then class_balanced weights.
    ce = [math.log(math.exp(-14) + 1 + math.exp(-1)) + 14, math.log(math.exp(-4.5) + 2 * math.exp(0.5)) + 4.5]
    weights = class_balanced_weights(LDAM_COUNTS, 0.9)
    assert plain.loss_fn()(logits, labels).item() == pytest.approx(np.mean(ce), rel=1e-5)
    # Divided by the batch's weights, as the reference's F.cross_entropy(weight=w).
    assert reweighted.loss_fn()(logits, labels).item() == pytest.approx(
        (weights[0] * ce[0] + weights[2] * ce[1]) / (weights[0] + weights[2]), rel=1e-5)


def test_log_columns_keep_the_scalar_options_only():
    assert Phase(losses.cross_entropy, 1).log_columns() == {}
    assert Phase(losses.focal_loss, 1, {"gamma": 2.0, "detach_factor": True}).log_columns() == {"gamma": 2.0}
    assert Phase(losses.logit_adjusted_loss, 1, {"log_prior": (-1.0, -0.5), "tau": 1.0}).log_columns() == {"tau": 1.0}
    assert Phase(losses.ldam_loss, 1, {"margins": (1.0, 2.0), "class_weights": (1.0, 1.0)}).log_columns() == {}


def test_describe_names_the_loss_and_its_scalar_options():
    assert Phase(losses.focal_loss, 1, {"gamma": 0.5, "detach_factor": False}).describe() == "focal_loss, gamma 0.5"
    assert Phase(losses.cross_entropy, 3).describe() == "cross_entropy"


# --- the real params.yaml ---------------------------------------------------------------------------------------

# Roughly the fixed subset: 10% of digits 0-4, all of 5-9.
SUBSET_COUNTS = np.array([592, 674, 596, 613, 584, 5421, 5918, 6265, 5851, 5949])
LOSS_FUNCTIONS = {function for _, function in inspect.getmembers(losses, inspect.isfunction)
                  if function.__module__ == losses.__name__ and not function.__name__.startswith("_")}


def test_every_variant_of_params_yaml_yields_phases_of_real_losses(project_root):
    logits = paddle.to_tensor(np.linspace(-1, 1, 3 * NUM_CLASSES).reshape(3, NUM_CLASSES), dtype="float32")
    labels = paddle.to_tensor([0, 5, 9], dtype="int64")
    for name, variant in load_variants(read_params(project_root / "params.yaml")).items():
        phases = variant.phases(SUBSET_COUNTS)
        assert phases and all(phase.loss in LOSS_FUNCTIONS and phase.epochs > 0 for phase in phases), name
        if variant.remedy.fixed_length:
            curriculum = variant.loss_params
            assert sum(p.epochs for p in phases) == len(curriculum.gammas) * curriculum.epochs_per_gamma
        else:
            assert sum(p.epochs for p in phases) == variant.epochs, name
        for phase in phases:
            assert math.isfinite(phase.loss_fn()(logits, labels).item()), (name, phase)


@pytest.mark.parametrize("share, epochs, split", [(0.1, 10, (9, 1)), (0.25, 10, (7, 3)), (0.1, 120, (108, 12)),
                                                   (0.01, 10, (9, 1)), (0.9, 2, (1, 1))])
def test_crt_trains_the_whole_network_then_the_classifier_alone_on_balanced_batches(share, epochs, split):
    representation, classifier = REMEDIES["crt"].phases(CrtParams(classifier_share=share), epochs, LDAM_COUNTS)
    assert (representation.epochs, classifier.epochs) == split  # rounded half up, at least one epoch each
    assert representation.loss is classifier.loss is losses.cross_entropy
    assert (representation.sampler, representation.classifier_only) == (None, False)  # the variant's sampler
    assert (classifier.sampler, classifier.classifier_only) == ("class_balanced", True)


def test_crt_needs_two_epochs():
    with pytest.raises(ParamsError, match="losses.crt needs at least 2 epochs"):
        REMEDIES["crt"].phases(CrtParams(classifier_share=0.5), 1, LDAM_COUNTS)
