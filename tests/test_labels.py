"""Normal / anomalous labels from a CSV, as users' tools write it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentbridge.data.labels import read_label_csv
from latentbridge.errors import DataError
from latentbridge.io import write_wav


def _expect(tmp_path):
    return {str((tmp_path / "Prüfstand_1.wav").resolve()): 0, str((tmp_path / "Prüfstand_2.wav").resolve()): 1}


@pytest.mark.parametrize("encoding, text", [
    ("utf-8", "path,label\nPrüfstand_1.wav,normal\nPrüfstand_2.wav,anomalous\n"),
    ("utf-8-sig", "path,label\nPrüfstand_1.wav,normal\nPrüfstand_2.wav,anomalous\n"),  # Excel's "CSV UTF-8"
    ("cp1252", "Path;Label\r\nPrüfstand_1.wav;normal\r\nPrüfstand_2.wav;anomalous\r\n"),  # Excel's "CSV" in Europe
    ("cp1252", "sep=;\r\npath;label\r\nPrüfstand_1.wav;0\r\nPrüfstand_2.wav;1\r\n"),
    ("utf-16", "path\tlabel\r\nPrüfstand_1.wav\tnormal\r\n\r\nPrüfstand_2.wav\tanomaly\r\n"),  # "Unicode text"
])
def test_label_csv_in_the_forms_spreadsheets_write(tmp_path, encoding, text):
    """These were refused ("not UTF-8 text") or read no column (semicolons, tabs, 'Path;Label')."""
    f = tmp_path / "labels.csv"
    f.write_bytes(text.encode(encoding))
    got = read_label_csv(f)
    assert _expect(tmp_path).items() <= got.items()
    assert got["name:Prüfstand_2.wav"] == 1


def test_windows_paths_in_a_label_csv(tmp_path):
    """A Windows spreadsheet's paths (test\\normal\\n_00.wav, C:\\data\\x.wav) were 'not listed': their backslashes
    are separators where a path has no slash."""
    f = tmp_path / "win.csv"
    f.write_bytes(b"path,label\r\ntest\\normal\\n_00.wav,normal\r\nC:\\rig\\test\\a_00.wav,anomalous\r\n")
    got = read_label_csv(f)
    assert got[str((tmp_path / "test" / "normal" / "n_00.wav").resolve())] == 0
    assert got["name:n_00.wav"] == 0 and got["name:a_00.wav"] == 1


def test_label_csv_problems_name_the_file_and_line(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("file,state\na.wav,normal\n")
    with pytest.raises(DataError, match="labels.csv.*needs the columns 'path,label'"):
        read_label_csv(f)
    f.write_text("path,label\na.wav,normal\nb.wav\n")
    with pytest.raises(DataError, match="line 3: label '' is not one of"):
        read_label_csv(f)
    f.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DataError, match="not a text file"):
        read_label_csv(f)


def test_paths_relative_to_the_working_folder_and_names_listed_twice(tmp_path, monkeypatch):
    """Paths written from the folder the command runs in matched nothing, and each file then took the first label
    listed for its bare name: five anomalous files read as normal (AUC 0.87 instead of 1) without a word."""
    import numpy as np

    from latentbridge.data.labels import resolve_labels

    files = []
    for state, ids in (("normal", range(0, 10)), ("anomalous", range(5, 15))):
        (tmp_path / "data" / "test" / state).mkdir(parents=True, exist_ok=True)
        for i in ids:
            (f := tmp_path / "data" / "test" / state / f"rec_{i}.wav").write_bytes(b"")
            files.append(f)
    (tmp_path / "meta").mkdir()
    table = "path,label\n" + "".join(f"data/test/{f.parent.name}/{f.name},{f.parent.name}\n" for f in files)
    (tmp_path / "meta" / "labels.csv").write_text(table)
    monkeypatch.chdir(tmp_path)
    truth = np.array([f.parent.name == "anomalous" for f in files], dtype=int)
    np.testing.assert_array_equal(resolve_labels(files, "meta/labels.csv"), truth)
    monkeypatch.chdir(tmp_path / "meta")  # no row matches a path now; rec_5 .. rec_9 are listed with both labels
    with pytest.raises(DataError, match=r"rec_5\.wav: matches no path listed in .*listed there as normal and as "
                                        r"anomalous"):
        resolve_labels(files, "labels.csv")


def test_rows_read_from_the_csvs_folder_first_quoted_line_breaks_and_composed_names(tmp_path, monkeypatch):
    """A row read from the working folder took another row's file first (files labelled the other way, a wrong AUC);
    the CSV was split into lines before its quotes were read (a name with a line break: "not listed"); a name
    written decomposed by the file system did not match the same name typed composed."""
    import csv
    import unicodedata

    import numpy as np

    from latentbridge.data.labels import resolve_labels

    (tmp_path / "D").mkdir()
    x, dx, dy = tmp_path / "x.wav", tmp_path / "D" / "x.wav", tmp_path / "D" / "y.wav"
    odd = tmp_path / "D" / "two\nlines.wav"
    nfd = tmp_path / "D" / unicodedata.normalize("NFD", "café.wav")
    for f in (x, dx, dy, odd, nfd):
        f.write_bytes(b"")
    with open(tmp_path / "D" / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["path", "label"], ["x.wav", "anomalous"], ["../x.wav", "normal"], ["y.wav", "normal"],
                     ["two\nlines.wav", "anomalous"], [unicodedata.normalize("NFC", "café.wav"), "anomalous"]])
    monkeypatch.chdir(tmp_path)  # here "x.wav" is also the working folder's x.wav
    got = resolve_labels([x, dx, dy, odd, nfd], "D/labels.csv")
    np.testing.assert_array_equal(got, [0, 1, 0, 1, 1])


def test_auto_labels_come_from_the_folder_given_and_below(tmp_path, monkeypatch):
    """A DCASE-style test folder under a project folder named `anomaly`: every file was labelled anomalous from that
    ancestor (AUC 0.75, or "all labelled anomalous"), and from inside the project 1.0. Only the folder given (its own
    name, '.' too) and those below it count; a file given by itself keeps the path typed."""
    import numpy as np

    from latentbridge.data.labels import label_from_path, resolve_labels

    test = tmp_path / "anomaly" / "dev_data" / "pump" / "test"
    (test / "normal").mkdir(parents=True)
    files = [test / "normal_id_00_0.wav", test / "anomaly_id_00_0.wav", test / "normal" / "x.wav"]
    for f in files:
        f.write_bytes(b"")
    assert label_from_path(files[0]) == 1  # the nearest folder named so, with no folder given: the old reading
    np.testing.assert_array_equal(resolve_labels(files, "auto", [test]), [0, 1, 0])
    monkeypatch.chdir(test.parent)
    rel = [f.relative_to(test.parent) for f in files]
    np.testing.assert_array_equal(resolve_labels(rel, "auto", [Path("test")]), [0, 1, 0])
    monkeypatch.chdir(test / "normal")
    assert resolve_labels([Path("x.wav")], "auto", [Path(".")]).tolist() == [0]  # '.' is the folder named normal
    assert resolve_labels([files[2]], "auto", [files[2]]).tolist() == [0]  # a file given: its own folder counts
    # files given by themselves (a shell's glob) under the project folder: their own folder and name, not `anomaly`
    given = [test / "normal_id_00_0.wav", test / "anomaly_id_00_0.wav"]
    assert resolve_labels(given, "auto", given).tolist() == [0, 1]
    assert resolve_labels(rel[:2], "auto", str(Path("..") / "test")).tolist() == [0, 1]  # one path as text
    # a folder given through a link: its name as typed, not its target's
    (tmp_path / "recordings").symlink_to(test.parent.parent)  # -> anomaly/dev_data
    linked = tmp_path / "recordings" / "pump" / "test" / "normal" / "x.wav"
    assert label_from_path(linked, tmp_path / "recordings") == 0 and label_from_path(
        tmp_path / "recordings" / "y.wav", tmp_path / "recordings") is None


def test_fit_refuses_only_recordings_marked_anomalous_below_what_it_was_given(tmp_path):
    """A machine's folder with abnormal/ beside normal/ is refused, naming the folder that holds the marked files; a
    normal_* file given by itself under a project folder named `anomaly`, or a folder named `abnormal_project`, is
    not."""
    from latentbridge.data.labels import list_normal_files

    machine = tmp_path / "anomaly" / "abnormal_project" / "fan"
    for sub, name in (("normal", "a.wav"), ("abnormal", "b.wav"), ("train", "normal_id_00_1.wav")):
        (machine / sub).mkdir(parents=True)
        write_wav(machine / sub / name, np.full(800, 0.1, np.float32), 8000)
    with pytest.raises(DataError, match=rf"{machine}: 1 of the 3 recordings are marked anomalous by their folder or "
                                        rf"name \({machine / 'abnormal' / 'b.wav'}\): training reads normal"):
        list_normal_files(machine)
    assert list_normal_files(machine / "train" / "normal_id_00_1.wav") == [machine / "train" / "normal_id_00_1.wav"]
    assert len(list_normal_files([machine / "normal", machine / "train"])) == 2


def test_a_file_left_out_of_the_csv_takes_no_label_from_a_namesake(tmp_path, monkeypatch):
    """x/clip.wav listed as normal gave y/clip.wav, an anomalous recording left out of the CSV, its label: counted as
    normal without a word (AUC 0.67 instead of an error). A row naming a file that exists labels that file only; a
    bare name (or a path that names no file) still labels the files of its name."""
    from latentbridge.data.labels import resolve_labels

    for rel in ("x/clip.wav", "y/clip.wav", "x/a.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "lab.csv").write_text("path,label\nx/clip.wav,normal\nx/a.wav,anomalous\n")
    files = [tmp_path / "x" / "a.wav", tmp_path / "x" / "clip.wav", tmp_path / "y" / "clip.wav"]
    with pytest.raises(DataError, match=r"y/clip\.wav: no label \(not listed in .*lab\.csv\)"):
        resolve_labels(files, str(tmp_path / "lab.csv"))
    (tmp_path / "names.csv").write_text("path,label\nclip.wav,normal\na.wav,anomalous\n")  # bare names: every namesake
    monkeypatch.chdir(tmp_path / "x")  # (where a bare name would name a file of the working folder)
    assert resolve_labels(files, str(tmp_path / "names.csv")).tolist() == [1, 0, 0]


@pytest.mark.parametrize("name, label", [
    ("normal_id_00_00000000.wav", 0), ("anomaly_id_02_00000003.wav", 1),  # DCASE 2020
    ("section_00_source_test_anomaly_0001_vel_6_loc_A.wav", 1),  # DCASE 2021-2025: the word inside the name
    ("section_01_target_test_normal_0003_car_B1.wav", 0), ("fan-abnormal-3.wav", 1),
    ("section_00_0000.wav", None), ("not_normal_01.wav", None), ("abnormal_vs_normal.wav", 1),  # (the old prefix)
    ("normalised_01.wav", None), ("0_jackson_0.wav", None),
    # a word that is no label: not first, nor followed by a number (a review's names)
    ("pump_anomaly_detection_session3.wav", None), ("anomaly.detection.v2.csv", None), ("not_an_anomaly.wav", None),
    ("without_anomaly.wav", None), ("pre-anomaly_baseline.wav", None), ("anomalous-free.wav", None),
    ("NORMAL-load-2.csv", None), ("pump_normal_mode_fault.wav", None), ("normal_anomaly_mix.wav", 0),
    ("anomaly_free_08.wav", None), ("run12-anomaly.wav", None), ("pump3_2024-05-01_normal.wav", None),
    ("recording_an_anomaly_01.wav", 1), ("anomaly_detection_rig_01.wav", None), ("normal_vs_anomaly_study_01.wav", 0),
])
def test_labels_from_the_words_of_file_names(name, label):
    """DCASE 2021+ names were 'no label' under --labels auto, and fit took a test folder of them (half anomalous)
    without a word: its AUC 0.40 against 0.97 for the model fitted on train/."""
    from latentbridge.data.labels import label_from_path, name_label

    assert name_label(name) == label and label_from_path(Path("x") / name) == label


def test_fit_refuses_a_dcase_test_folder_and_dcase_ground_truth_reads_without_header(tmp_path):
    from latentbridge.data.labels import list_normal_files, resolve_labels

    test = tmp_path / "bearing" / "test"
    test.mkdir(parents=True)
    names = ["section_00_source_test_normal_0000.wav", "section_00_source_test_anomaly_0000.wav"]
    for n in names + ["section_00_0000.wav", "section_00_0001.wav"]:
        write_wav(test / n, np.full(800, 0.1, np.float32), 8000)
    with pytest.raises(DataError, match="1 of the 4 recordings are marked anomalous"):
        list_normal_files(test)
    truth = tmp_path / "ground_truth_bearing_section_00_test.csv"  # DCASE's evaluation labels: no header
    files = [test / "section_00_0000.wav", test / "section_00_0001.wav"]
    for sep in (",", ";", "\t"):
        truth.write_text(f"section_00_0000.wav{sep}0\nsection_00_0001.wav{sep}1\n")
        assert resolve_labels(files, str(truth)).tolist() == [0, 1]
    with pytest.raises(DataError, match=r"no label \(no folder named normal or anomalous / anomaly / abnormal holds "
                                        r"it, and its name neither starts with such a word and '_' nor has one "
                                        r"followed by a number"):
        resolve_labels(files, "auto")


def test_dcase_groups_and_the_official_score_match_the_challenges_evaluator():
    """Per section: AUC of each domain = its normal files against every anomalous file of the section, pAUC over the
    section (sklearn's max_fpr=0.1); the official score is their harmonic mean over the sections (DCASE 2022-2025)."""
    from scipy.stats import hmean
    from sklearn.metrics import roc_auc_score

    from latentbridge.data.labels import dcase_groups
    from latentbridge.metrics.anomaly import group_metrics

    rng = np.random.default_rng(3)
    files, y = [], []
    for sec in ("00", "01"):
        for dom in ("source", "target"):
            for lab in ("normal", "anomaly"):
                for k in range(10):
                    files.append(Path(f"section_{sec}_{dom}_test_{lab}_{k:04d}_vel_6.wav"))
                    y.append(int(lab == "anomaly"))
    y = np.array(y)
    s = rng.normal(size=len(y)) + 1.2 * y
    groups, domains = dcase_groups(files)
    m = group_metrics(y, s, groups, domains)
    g, d = np.array(groups), np.array(domains)
    official = []
    for sec in ("section_00", "section_01"):
        mine = g == sec
        assert m[f"pauc_{sec}"] == pytest.approx(roc_auc_score(y[mine], s[mine], max_fpr=0.1))
        for dom in ("source", "target"):
            pick = mine & ((d == dom) | (y == 1))
            assert m[f"auc_{sec}_{dom}"] == pytest.approx(roc_auc_score(y[pick], s[pick]))
            official.append(m[f"auc_{sec}_{dom}"])
        official.append(m[f"pauc_{sec}"])
    assert m["dcase_score"] == pytest.approx(hmean(official))
    assert m["auc_groups_mean"] == pytest.approx(np.mean([m["auc_section_00"], m["auc_section_01"]]))
    # DCASE 2020: machine IDs, no domains; one group, or none, gives no breakdown
    ids, none = dcase_groups([Path("normal_id_00_0.wav"), Path("anomaly_id_02_0.wav")])
    assert ids == ["id_00", "id_02"] and none is None
    assert dcase_groups([Path("normal_id_00_0.wav"), Path("anomaly_id_00_1.wav")]) == (None, None)
    assert dcase_groups([Path("a.wav"), Path("b.wav")]) == (None, None)
    assert dcase_groups([Path("target_speed_01.wav"), Path("source_speed_02.wav")]) == (None, None)  # no section
    # two machine types' sections: each machine's own (fan/test/section_00 is not pump/test/section_00)
    two = [Path("fan/test/section_00_source_test_normal_0.wav"), Path("pump/test/section_00_source_test_normal_0.wav")]
    assert dcase_groups(two)[0] == ["fan_section_00", "pump_section_00"]
    twenty21 = [Path("fan/source_test/section_00_source_test_normal_0.wav"),  # DCASE 2021's test folders
                Path("pump/target_test/section_00_target_test_anomaly_0.wav")]
    assert dcase_groups(twenty21) == (["fan_section_00", "pump_section_00"], ["source", "target"])
    assert group_metrics([0, 1, 0, 0], [0.1, 0.9, 0.2, 0.3], ["id_00", "id_00", "id_02", "id_02"])["auc_id_02"] is None


def test_dcase_submission_files_per_machine_and_section(tmp_path):
    """DCASE's submission format: anomaly_score_<machine>_section_XX_test.csv (name,score) and decision_result_...
    (name,0|1), one per machine type (the folder above test/) and section; 2020's per machine ID; none where a name
    gives no section."""
    from types import SimpleNamespace

    from latentbridge.report.runs.anomaly import dcase_submission

    files = [tmp_path / "eval_data" / "raw" / "bearing" / "test" / n
             for n in ("section_00_0000.wav", "section_01_0000.wav", "section_00_0001.wav")]
    files += [tmp_path / "dev" / "fan" / "test" / "anomaly_id_02_00000001.wav"]
    res = SimpleNamespace(windows=SimpleNamespace(files=files), file_scores=np.array([1.5, 2.25, 3.0, 9.0]),
                          threshold=2.0)
    written = dcase_submission(res, tmp_path / "out")
    assert sorted(p.name for p in written) == [
        "anomaly_score_bearing_section_00_test.csv", "anomaly_score_bearing_section_01_test.csv",
        "anomaly_score_fan_id_02.csv", "decision_result_bearing_section_00_test.csv",
        "decision_result_bearing_section_01_test.csv", "decision_result_fan_id_02.csv"]
    out = tmp_path / "out" / "dcase"
    assert (out / "anomaly_score_bearing_section_00_test.csv").read_text() == \
        "section_00_0000.wav,1.5\nsection_00_0001.wav,3.0\n"
    assert (out / "decision_result_bearing_section_00_test.csv").read_text() == \
        "section_00_0000.wav,0\nsection_00_0001.wav,1\n"
    res.windows.files = files[:3] + [tmp_path / "other.wav"]  # a name without a section: no submission
    assert dcase_submission(res, tmp_path / "out2") == [] and not (tmp_path / "out2").exists()


def test_names_that_say_anomaly_where_no_rule_labels_them_are_named_at_fit(tmp_path, caplog):
    """run12-anomaly.wav and motorA_bearing_fault_01.wav among normal recordings were fitted on without a word; a
    folder where every name says so (a project's name) is not warned of."""
    from latentbridge.data.labels import list_normal_files

    for name in ("a_01.wav", "a_02.wav", "run12-anomaly.wav", "motorA_bearing_fault_01.wav", "anomaly_free_08.wav"):
        (tmp_path / "mixed").mkdir(exist_ok=True)
        write_wav(tmp_path / "mixed" / name, np.full(800, 0.1, np.float32), 8000)
    with caplog.at_level("WARNING"):
        assert len(list_normal_files(tmp_path / "mixed")) == 5
    assert "2 of the 5 training recordings have names that say anomaly or fault" in caplog.text
    assert "run12-anomaly.wav" in caplog.text and "anomaly_free_08" not in caplog.text
    caplog.clear()
    for name in ("fault_current_sensor_01.wav", "voltage_01.wav", "broken_ice_rig_data_01.wav", "post_fault_01.wav"):
        (tmp_path / "plain").mkdir(exist_ok=True)  # words that say nothing of the recording: only the last is named
        write_wav(tmp_path / "plain" / name, np.full(800, 0.1, np.float32), 8000)
    with caplog.at_level("WARNING"):
        list_normal_files(tmp_path / "plain")
    assert "1 of the 4 training recordings" in caplog.text and "post_fault_01.wav" in caplog.text
    caplog.clear()
    for k in range(3):
        (tmp_path / "project").mkdir(exist_ok=True)
        write_wav(tmp_path / "project" / f"pump_anomaly_detection_{k}.wav", np.full(800, 0.1, np.float32), 8000)
    with caplog.at_level("WARNING"):
        list_normal_files(tmp_path / "project")
    assert "say anomaly" not in caplog.text


def test_dcase_training_recordings_and_bare_ground_truth_names_of_two_machines(tmp_path, caplog):
    """A machine folder scored whole: its train/ is no machine called 'train', and its recordings are in no section's
    figures nor submission file. A machine's ground truth of bare names labelled another machine's namesakes
    silently."""
    from types import SimpleNamespace

    from latentbridge.data.labels import dcase_groups, resolve_labels
    from latentbridge.report.runs.anomaly import dcase_submission

    fan = tmp_path / "raw" / "fan"
    files = [fan / "train" / "section_00_source_train_normal_0000_a.wav", fan / "test" /
             "section_00_source_test_normal_0000_a.wav", fan / "test" / "section_00_target_test_anomaly_0000_a.wav"]
    groups, domains = dcase_groups(files)
    assert groups == [None, "section_00", "section_00"] and domains == ["source", "source", "target"]
    res = SimpleNamespace(windows=SimpleNamespace(files=files), file_scores=np.array([1.0, 2.0, 3.0]), threshold=2.5)
    written = dcase_submission(res, tmp_path / "out")
    assert [p.name for p in written] == ["anomaly_score_fan_section_00_test.csv",
                                         "decision_result_fan_section_00_test.csv"]
    assert written[0].read_text().count("\n") == 2  # the test recordings alone
    stray = SimpleNamespace(windows=SimpleNamespace(files=files + [fan / "test" / "calib_tone.wav"]),
                            file_scores=np.array([1.0, 2.0, 3.0, 4.0]), threshold=2.5)
    with caplog.at_level("WARNING"):
        assert dcase_submission(stray, tmp_path / "out2") == []
    assert "no DCASE submission files: 1 of the 3 test recordings" in caplog.text and "calib_tone.wav" in caplog.text
    caplog.clear()
    evals = []
    for machine in ("fan", "ToyCar"):
        (tmp_path / "eval" / machine / "test").mkdir(parents=True)
        for k in range(2):
            evals.append(tmp_path / "eval" / machine / "test" / f"section_00_000{k}.wav")
            evals[-1].write_bytes(b"")
    truth = tmp_path / "ground_truth_fan_section_00_test.csv"
    truth.write_text("section_00_0000.wav,0\nsection_00_0001.wav,1\n")
    with caplog.at_level("WARNING"):
        assert resolve_labels(evals, str(truth)).tolist() == [0, 1, 0, 1]
    assert "2 file names listed bare in" in caplog.text and "a bare name labels every file of that name" in caplog.text
