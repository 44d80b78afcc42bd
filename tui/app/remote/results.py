"""The results of a query as a tree (patients > studies > series), its labels and marks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from textual.binding import Binding
from textual.widgets.tree import TreeNode

from tui.app.labels import Fitted, FittedTree, iso_date, line, plural
from tui.privacy import mask

Result = TreeNode[dict[str, Any]]


def _mark(data: dict[str, Any]) -> tuple[str, str]:
    return ("✔ ", "bold") if data.get("marked") else ("", "")


def _here(data: dict[str, Any], total_key: str) -> tuple[str, str]:
    """``● here`` when the archive holds all of it, ``◐ 26/301 here`` when part of it (the
    PACS's count; just ``◐ 26 here`` when it gave none)."""
    here = data.get("here", 0)
    if not here:
        return ("", "")
    total = str(data["row"].get(total_key, ""))
    if total.isdigit() and here >= int(total):
        return ("● here  ", "green")
    return (f"◐ {here}/{total} here  " if total.isdigit() else f"◐ {here} here  ", "yellow")


def study_label(data: dict[str, Any], private: bool) -> Fitted:
    """Date, modalities, what is here already, description, accession, counts: the
    description is cut first when the line is narrow."""
    row = data["row"]
    accession = row.get("AccessionNumber", "")
    counts = [
        plural(row[key], word, words)
        for key, word, words in (("NumberOfStudyRelatedSeries", "series", "series"),
                                 ("NumberOfStudyRelatedInstances", "image", "images"))
        if row.get(key)
    ]  # fmt: skip
    modalities = row.get("ModalitiesInStudy", "")
    return line(
        _mark(data),
        iso_date(row.get("StudyDate", "")),
        "  " + (modalities + "  " if modalities else ""),
        _here(data, "NumberOfStudyRelatedInstances"),
        row.get("StudyDescription") or "(no description)",
        ("  acc " + (mask(accession) if private else accession) if accession else "", "dim"),
        ("  " + ", ".join(counts) if counts else "", "dim"),
        cut=4,
    )


def series_label(data: dict[str, Any]) -> Fitted:
    row = data["row"]
    images = row.get("NumberOfSeriesRelatedInstances", "")
    return line(
        _mark(data),
        f"{row.get('Modality', '')} {row.get('SeriesNumber', '')}".strip() + "  ",
        _here(data, "NumberOfSeriesRelatedInstances"),
        row.get("SeriesDescription") or "(no description)",
        ("  " + plural(images, "image") if images else "", "dim"),
        cut=3,
    )


class ResultTree(FittedTree):
    """The results: space marks (a study, a series, or all studies of a patient).

    Built for 10,000 answers: labels are one-line :class:`Text` already (no markup to parse),
    widths are measured without rendering, and a batch of nodes is added with one
    invalidation instead of one per node. Lines are fitted to the width as they are drawn
    (the description gives way first), so the tree never scrolls sideways.
    """

    BINDINGS = [Binding("space", "screen.mark", "Mark", id="remote.mark")]
    _quiet = False

    # Private Textual API, the one use of it here: Tree has no public way to add many nodes
    # with one layout (TreeNode.add invalidates the whole tree each time, 10,000 times for
    # 10,000 answers). Tree._invalidate is what each add calls; `adding` holds it back.
    def _invalidate(self) -> None:
        if not self._quiet:
            super()._invalidate()

    @contextmanager
    def adding(self) -> Iterator[None]:
        """Add many nodes, then lay the tree out once."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False
            self._invalidate()

    @property
    def private(self) -> bool:
        return bool(getattr(self.app, "privacy", False))

    def relabel(self, node: Result) -> None:
        data = node.data or {}
        if data.get("level") == "study":
            node.set_label(study_label(data, self.private))
        elif data.get("level") == "series":
            node.set_label(series_label(data))

    # -- marks -------------------------------------------------------------------------------

    def mark(self) -> None:
        """Space: a study (whole), a series (alone), or every study of a patient."""
        node = self.cursor_node
        data = (node.data or {}) if node is not None else {}
        level = data.get("level")
        if node is None or level not in ("patient", "study", "series"):
            return
        if level == "patient":
            marked = not all((child.data or {}).get("marked") for child in node.children)
            for child in node.children:
                self.mark_study(child, marked)
            return
        if level == "study":
            self.mark_study(node, not data["marked"])
        else:
            study = node.parent
            assert study is not None and study.data is not None
            if study.data["marked"]:  # the whole study was marked: all of it but this one
                self.mark_study(study, False)
                for sibling in study.children:
                    sibling.data["marked"] = sibling is not node  # type: ignore[index]
                    self.relabel(sibling)
            else:
                data["marked"] = not data["marked"]
                self.relabel(node)
        self.action_cursor_down()

    def mark_study(self, study: Result, marked: bool) -> None:
        """A study marked whole: its series show no marks of their own."""
        assert study.data is not None
        study.data["marked"] = marked
        self.relabel(study)
        for series in study.children:
            if series.data and series.data.get("level") == "series" and series.data["marked"]:
                series.data["marked"] = False
                self.relabel(series)

    def mark_all(self) -> None:
        studies = [s for p in self.root.children for s in p.children]
        marked = not all(s.data["marked"] for s in studies)  # type: ignore[index]
        for study in studies:
            self.mark_study(study, marked)

    def marked(self) -> list[Result]:
        """The marked studies, and the marked series of studies not marked whole."""
        picked = []
        for patient in self.root.children:
            for study in patient.children:
                if study.data["marked"]:  # type: ignore[index]
                    picked.append(study)
                    continue
                picked += [s for s in study.children if (s.data or {}).get("marked")]
        return picked

    def highlighted(self) -> list[Result]:
        """What the cursor is on, to retrieve: a study, a series, or a patient's studies."""
        node = self.cursor_node
        level = (node.data or {}).get("level") if node is not None else None
        if node is None or level not in ("patient", "study", "series"):
            return []
        return list(node.children) if level == "patient" else [node]
