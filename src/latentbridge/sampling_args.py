"""What a sampling command is given, checked and read (torch-free: the ONNX edge sampler reads them too): a class by
name or index, classifier-free guidance strengths (one, or one per modality), and what is said of a diffusion model's
continuous conditions."""

from __future__ import annotations

from collections.abc import Mapping


def class_index(label, names: list[str], n_classes: int, where: str = "") -> int:
    """The index of a model's class given by its name (a class folder's) or, failing that, its index; the CLI's
    sampler and the ONNX edge sampler both read ``--class`` so. LatentbridgeError (prefixed by ``where``) for a model
    without classes or an unknown one."""
    from latentbridge.errors import LatentbridgeError

    import unicodedata

    at = f"{where}: " if where else ""
    if not n_classes:
        raise LatentbridgeError(f"{at}the model was trained without class labels; drop --class")

    def nfc(text) -> str:  # a folder named on macOS (decomposed letters) matches the name as typed
        return unicodedata.normalize("NFC", str(text)).strip()

    key, known = nfc(label), [nfc(n) for n in names]
    if key in known:
        return known.index(key)
    number = key.lstrip("-").isdigit()
    numbered = [i for i, n in enumerate(known) if n.lstrip("-").isdigit()]
    if number and numbered:  # classes named by numbers: '1' is the class '01', never the index of '02'
        same = [i for i in numbered if int(known[i]) == int(key)]
        if len(same) == 1:
            return same[0]
        raise LatentbridgeError(f"{at}unknown class {label!r}; classes: {names} (classes named by numbers are "
                                "given by name, not by index)")
    if number and 0 <= int(key) < n_classes:
        return int(key)
    raise LatentbridgeError(f"{at}unknown class {label!r}; classes: {names or list(range(n_classes))}")


def guidance_problem(guidance, modalities=None) -> str | None:
    """What is wrong with a classifier-free guidance setting, one strength or ``{modality: strength}``
    (None: nothing): a modality not among ``modalities`` (when given), a strength that is not a finite
    number >= 0. The config, the command line and the model's API each raise it in their own error."""
    import math

    per = guidance if isinstance(guidance, Mapping) else {"": guidance}
    if modalities is not None and (unknown := sorted(set(per) - set(modalities) - {""})):
        return f"the modalities are {', '.join(modalities)}, got {unknown}"
    for g in per.values():
        try:
            ok = math.isfinite(float(g)) and float(g) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            return f"a strength must be a finite number >= 0, got {g}"
    return None


def condition_warning(condition, names, ranges, n_continuous: int, dropout: float) -> str | None:
    """What ``sample`` (and the edge sampler) say of a diffusion model's continuous ``condition`` (None: none given):
    values outside the training images' ``ranges``, or none given to a model that takes ``n_continuous`` (drawn with
    the null condition, learnt only with label ``dropout`` above 0)."""
    names = list(names or []) or [f"condition {j}" for j in range(n_continuous)]
    if condition is not None:
        outside = [f"{name} {v:g} (training {lo:g} to {hi:g})" for name, v, (lo, hi)
                   in zip(names, condition, ranges or []) if not lo <= v <= hi]
        return (f"--condition outside the training images' range: {', '.join(outside)}; the model extrapolates "
                "there, and its samples may not follow the condition") if outside else None
    if not n_continuous:
        return None
    return (f"no --condition: the model takes {n_continuous} continuous condition(s) ({', '.join(names)}); its samples "
            "are drawn with the null condition" + (" it learnt by dropping conditions" if dropout > 0 else
                                                   ", which it never learnt (diffusion.label_dropout 0): expect "
                                                   "samples unlike its images"))


def unlearnt_null_warning(guidance, dropout: float) -> str | None:
    """What a conditional sample at ``guidance`` other than 1 draws from a model whose label ``dropout`` was 0: the null
    condition guidance mixes in was never learnt, an untrained embedding (sampled without a word)."""
    if dropout > 0 or guidance is None or float(guidance) == 1:
        return None
    return (f"guidance {float(guidance):g} mixes in the model's null condition, which it never learnt "
            "(diffusion.label_dropout 0): expect samples unlike its images; guidance 1 samples the conditional model "
            "alone")


def parse_guidance(given, modalities):
    """``--guidance`` text as a number or ``{modality: number}`` (one named twice, or text of neither form: an error);
    any other value as it is."""
    if isinstance(given, str):
        text = given.strip()
        try:
            pairs = [(k.strip(), float(v)) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())] \
                if "=" in text else []
            parsed = dict(pairs) if "=" in text else float(text)
        except ValueError:
            from latentbridge.errors import LatentbridgeError

            raise LatentbridgeError(f"--guidance: a number or MODALITY=NUMBER,... (modalities "
                                    f"{', '.join(modalities)}), got {given!r}") from None
        if len(dict(pairs)) != len(pairs):  # image=2,image=3 kept the last one
            from latentbridge.errors import LatentbridgeError

            raise LatentbridgeError(f"--guidance: a modality named twice in {given!r}")
        given = parsed
    return given


def resolve_guidance(given, run, modalities) -> float | dict[str, float]:
    """One strength, or ``{modality: strength}`` over every modality (``given`` over the ``run``'s)."""
    given = parse_guidance(given, modalities)
    if problem := guidance_problem(given, modalities):
        from latentbridge.errors import LatentbridgeError

        raise LatentbridgeError(f"--guidance: {problem}")
    if isinstance(given, Mapping):
        base = run if isinstance(run, Mapping) else {m: float(run) for m in modalities}
        given = {m: float(given.get(m, base.get(m, 1.0))) for m in modalities}
        if len(set(given.values())) == 1:
            given = next(iter(given.values()))
    return given if isinstance(given, dict) else float(given)


def guidance_text(g) -> str:
    """``4`` or ``audio 8, image 4``."""
    return f"{g:g}" if not isinstance(g, dict) else ", ".join(f"{m} {v:g}" for m, v in g.items())


def check_sampler_flags(*, steps=None, eta=None, batch_size=None, seed=None, **_) -> None:
    """The sampler flags both kinds of diffusion model share (the steps' upper bound is the model's), as a command
    line or a Python call gives them (0 steps ran every timestep, a batch size of 0 divided by zero)."""
    import math

    from latentbridge.errors import LatentbridgeError
    from latentbridge.utils import check_seed

    if seed is not None:  # torch took up to 2**64 - 1, then a traceback
        check_seed(seed)
    whole = steps is None or not isinstance(steps, bool) and math.isfinite(steps) and int(steps) == steps
    if not whole or steps is not None and steps < 1:  # 0 once meant "the run's" for a diffusion model, and an error
        # for MLD; 2.5 sampled 2 steps, recorded as 2; NaN was a ValueError
        raise LatentbridgeError(f"--steps must be a whole number of at least 1, got {steps}")
    if eta is not None and not (math.isfinite(eta) and 0.0 <= eta <= 1.0):
        raise LatentbridgeError(f"--eta must be a number from 0 (deterministic) to 1 (DDPM-like noise), got {eta:g}")
    if batch_size is not None and batch_size < 1:
        raise LatentbridgeError(f"--batch-size must be at least 1, got {batch_size}")


def sampler_eta(scheduler: str, eta, run_eta: float) -> float:
    """The eta ``scheduler`` samples with: DDIM's ``eta`` (None: the run's ``run_eta``); 0 for another sampler, which
    has none (the run's was recorded as though used), and an ``eta`` given to one refused (it drew the samples it
    draws without, and the samples' settings recorded it)."""
    if scheduler == "ddim":
        return float(run_eta if eta is None else eta)
    if eta is not None:
        from latentbridge.errors import LatentbridgeError

        raise LatentbridgeError(f"--eta {eta:g}: the share of fresh noise in DDIM's steps; the {scheduler} sampler "
                                "takes none (--scheduler ddim)")
    return 0.0
