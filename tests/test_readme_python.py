"""The README's "From Python" block, run as written on small model folders of each kind it names."""

import re

import numpy as np

from conftest import REPO, tiny_generative_folders, tiny_multimodal_folders


def _block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"## From Python\n.*?```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_python_block_runs(fitted_model, machine_data, tmp_path, capsys):
    from latentbridge.io.vibration import write_vibration_csv

    folders = {**tiny_multimodal_folders(tmp_path / "m"), **tiny_generative_folders(tmp_path / "g")}
    recording = tmp_path / "rec_01.csv"
    rng = np.random.default_rng(0)
    write_vibration_csv(recording, rng.normal(0, 0.01, (2, 3000)).astype(np.float32), 100.0)
    places = {'"runs/machine"': fitted_model, '"data/machine/test"': machine_data / "test",
              '"runs/mmvae"': folders["bridge"], '"data/bridge/Data/Test_001/rec_01.csv"': recording,
              '"runs/ddpm"': folders["ddpm"]}
    code = _block()
    # the recording it names is one the main job's data holds (it named Test_01: the default 300 states are Test_001 on)
    from latentbridge.data.synth.bridge import DEFAULTS
    assert f"Test_{1:0{len(str(DEFAULTS['states']))}d}/rec_01.csv" in code
    for written, path in places.items():
        assert written in code, written
        code = code.replace(written, repr(str(path)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"].file_scores.shape == (len(scope["result"].windows.files),)
    assert scope["scores"].shape == (2,) and scope["alarms"].dtype == bool
    assert scope["crack"].mask.shape == (16, 48) and 0.0 <= scope["crack"].extent <= 1.0
    assert scope["images"].shape == (8, 1, 28, 28) and 0.0 <= scope["images"].min() <= scope["images"].max() <= 1.0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
