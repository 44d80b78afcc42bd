"""Diagnostics of a DIMSE node: association, C-ECHO, C-FIND, C-GET, the C-MOVE round trip
and the modality worklist, after the connection (:func:`.step.connect`).

One module past 600 lines: each step reads what the ones before it learned (the contexts
the peer accepted, our address, the one instance found), kept on one :class:`DimseRun`.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.net import errors
from tui.net.diagnose.step import (
    FAILED,
    OK,
    SKIPPED,
    WARNING,
    Step,
    connect,
    dimse_tls_failed,
    ms,
    speaks_tls,
)
from tui.net.nodes import Node

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND
QUERY_RETRIEVE = {
    # root and service: the Query/Retrieve SOP class
    "study find": "1.2.840.10008.5.1.4.1.2.2.1",
    "study move": "1.2.840.10008.5.1.4.1.2.2.2",
    "study get": "1.2.840.10008.5.1.4.1.2.2.3",
    "patient find": "1.2.840.10008.5.1.4.1.2.1.1",
    "patient move": "1.2.840.10008.5.1.4.1.2.1.2",
    "patient get": "1.2.840.10008.5.1.4.1.2.1.3",
}
# Storage classes offered in every syntax we decode (one context each, so the answer says
# which syntaxes the peer takes), with the SCP role a C-GET needs: the common modalities.
STORAGE = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
)
FIND_LIMIT = 50  # matches counted per level: enough to see the level works, quick on any PACS

# Why a presentation context was refused (PS3.8 9.3.3.2, pynetdicom's result values).
_CONTEXT_RESULTS = {
    1: "refused by the PACS",
    2: "refused, no reason given",
    3: "not supported",
    4: "none of our transfer syntaxes",
}


def prepare(modules: tuple[str, ...]) -> None:
    """Import ``modules`` now, so that no step's time includes loading them."""
    for module in modules:
        importlib.import_module(module)


def _spool(filer: Any, tally: Any) -> Any:
    """Where each instance a C-GET brings is written: the throwaway archive's store."""
    return lambda _: filer.incoming(tally)


def _name(uid: str) -> str:
    from pydicom.uid import UID

    return UID(uid).name or uid


class DimseRun:
    """The steps for a DIMSE node, and what each learns and passes on to the next ones."""

    STEPS: tuple[tuple[str, str], ...] = (
        ("connect", "name resolution and TCP connect"),
        ("associate", "association"),
        ("echo", "C-ECHO"),
        ("find", "C-FIND at each level"),
        ("get", "C-GET of one instance"),
        ("move", "C-MOVE round trip"),
        ("worklist", "modality worklist"),
    )
    LEVELS: tuple[str, ...] = ("patient", "study", "series", "image")  # C-FIND's, in order

    def __init__(self, node: Node, receive_port: int, cancel: threading.Event | None) -> None:
        self.node = node
        self.receive_port = receive_port
        self.cancel = cancel
        self.fatal = ""  # why the steps still to come cannot run
        self.local_host = ""  # our address on the connection to the PACS
        self.accepted: dict[str, list[str]] = {}  # SOP class: transfer syntaxes accepted
        self.instance: dict[str, str] | None = None  # one instance found at image level
        prepare(self.MODULES)

    # What the steps import, loaded before the first is timed: pynetdicom's and pydicom's
    # half second or more of import is no part of what the node takes to answer.
    MODULES: tuple[str, ...] = (
        "pydicom.uid", "pydicom.dataset", "pynetdicom", "pynetdicom.sop_class", "tui.net.scu",
        "tui.net.contexts", "tui.net.tls", "tui.net.find", "tui.net.get", "tui.net.status",
        "tui.net.storage", "tui.net.receiver", "tui.net.worklist",
    )  # fmt: skip

    def offered(self, sop_class: str) -> bool | None:
        """Whether the association accepted ``sop_class`` (None: not known)."""
        return sop_class in self.accepted if self.accepted else None

    # -- 1. name resolution and TCP connect ----------------------------------------------------

    def connect(self, step: Step) -> None:
        node = self.node
        local = connect(
            step, node, node.host, node.port, node.tls, "--host HOST --port PORT",
            dimse_tls_failed(node),
        )  # fmt: skip
        if local is None:
            self.fatal = f"no connection to {node.host}:{node.port}"
        else:
            self.local_host = local

    # -- 2. association ------------------------------------------------------------------------

    def associate(self, step: Step) -> None:
        from tui.net.scu import make_ae
        from tui.net.tls import client_context

        node = self.node
        proposed, roles = self._proposal()
        ae = make_ae(node)
        ae.requested_contexts = proposed
        tls = (client_context(node), node.host) if node.tls else None
        started = time.monotonic()
        try:
            assoc = ae.associate(
                node.host, node.port, ae_title=node.aet, ext_neg=roles or None, tls_args=tls
            )
            step.details.append(f"negotiated in {ms(time.monotonic() - started)}")
            if not assoc.is_established:
                self.fatal = "no association"
                self._not_established(step, assoc, time.monotonic() - started)
                return
            try:
                self._report_contexts(step, assoc)
            finally:
                assoc.release()
        finally:
            ae.shutdown()

    def _proposal(self) -> tuple[list[Any], list[Any]]:
        """The presentation contexts to offer, and the SCP/SCU role items (C-GET's storage)."""
        from pynetdicom import build_role

        from tui.net.contexts import ACCEPTED_SYNTAXES, UNCOMPRESSED, context

        proposed = [context(VERIFICATION, [s]) for s in UNCOMPRESSED]
        for uid in [*QUERY_RETRIEVE.values(), WORKLIST_FIND]:
            proposed += [context(uid, [s]) for s in UNCOMPRESSED]
        for uid in STORAGE:
            proposed += [context(uid, [s]) for s in ACCEPTED_SYNTAXES]
        roles: list[Any] = [build_role(uid, scu_role=True, scp_role=True) for uid in STORAGE]
        return proposed, roles

    def _not_established(self, step: Step, assoc: Any, waited: float) -> None:
        node = self.node
        if assoc.is_rejected and assoc.acceptor.primitive is not None:
            rj = assoc.acceptor.primitive
            source, reason = rj.result_source or 0, rj.diagnostic or 0
            step.facts["rejection"] = {"result": rj.result, "source": source, "reason": reason}
            us = f" ({self.local_host})" if self.local_host else ""
            if (source, reason) == (1, 3):
                step.set(
                    FAILED,
                    f"the PACS does not know our AE title {node.calling_aet}: add it on the PACS",
                    f"add {node.calling_aet} with this machine's address{us} to the PACS's known "
                    "nodes (modalities), or set the calling AE title to one it knows "
                    f"(pacs-tui node edit {node.name} --calling-aet AET)",
                )
            elif (source, reason) == (1, 7):
                step.set(
                    FAILED,
                    f"the PACS does not answer to the AE title {node.aet} (called AE title not "
                    "recognised)",
                    f"fix the node's aet to the PACS's own AE title "
                    f"(pacs-tui node edit {node.name} --aet AET)",
                )
            else:
                step.set(FAILED, str(errors.rejected(node, rj.result or 0, source, reason)))
            return
        if waited >= node.acse_timeout * 0.95:  # pynetdicom reports its timeout as an abort
            step.set(FAILED, str(errors.timed_out(node, "association negotiation", waited)))
        elif not node.tls and speaks_tls(node.host, node.port, node.connect_timeout):
            step.set(
                FAILED,
                f"{node.host}:{node.port} speaks TLS, and the node is set up without it",
                f"set the CA that signed its certificate (pacs-tui node edit {node.name} "
                "--tls-ca PEM), and our own certificate if it wants one (--tls-cert, --tls-key)",
            )
        elif node.tls and not node.tls_cert:
            step.set(
                FAILED,
                "the PACS dropped the association over TLS: it may want our certificate "
                f"(mutual TLS), or not know our AE title {node.calling_aet}",
                f"give the node our certificate and key (pacs-tui node edit {node.name} "
                f"--tls-cert PEM --tls-key PEM); else add {node.calling_aet} on the PACS",
            )
        elif assoc.is_aborted:
            step.set(FAILED, str(errors.aborted(node, "association negotiation")))
        else:
            step.set(
                FAILED,
                f"{node.host}:{node.port} took the connection but no association followed",
                "check that the port is the PACS's DICOM port",
            )

    def _negotiated(self, step: Step, assoc: Any) -> tuple[dict[str, list[str]], dict[str, str]]:
        """What the peer accepted (class: transfer syntaxes) and refused (class: why), kept
        in ``self.accepted`` and the step's facts."""
        node = self.node
        acceptor = assoc.acceptor
        accepted: dict[str, list[str]] = {}
        scp_role: dict[str, bool] = {}
        for cx in assoc.accepted_contexts:
            uid = str(cx.abstract_syntax)
            accepted.setdefault(uid, []).append(str(cx.transfer_syntax[0]))
            scp_role[uid] = scp_role.get(uid, False) or bool(cx.as_scp)
        refused: dict[str, str] = {}
        for cx in assoc.rejected_contexts:
            uid = str(cx.abstract_syntax)
            if uid not in accepted:
                refused.setdefault(uid, _CONTEXT_RESULTS.get(cx.result, f"result {cx.result}"))
        self.accepted = accepted
        step.facts |= {
            "ae_title": node.aet,
            "max_pdu": int(acceptor.maximum_length or 0),
            "implementation_class_uid": str(acceptor.implementation_class_uid or ""),
            "implementation_version_name": str(acceptor.implementation_version_name or ""),
            "accepted": {
                uid: {
                    "name": _name(uid),
                    "transfer_syntaxes": syntaxes,
                    **({"scp_role": scp_role[uid]} if uid in STORAGE else {}),
                }
                for uid, syntaxes in accepted.items()
            },
            "refused": {uid: {"name": _name(uid), "reason": why} for uid, why in refused.items()},
        }
        return accepted, refused

    def _report_contexts(self, step: Step, assoc: Any) -> None:
        node = self.node
        acceptor = assoc.acceptor
        accepted, refused = self._negotiated(step, assoc)
        max_pdu = int(acceptor.maximum_length or 0)
        version = acceptor.implementation_version_name or "no version name"
        step.details.append(
            f"implementation {acceptor.implementation_class_uid or '?'} ({version}); "
            f"maximum PDU {max_pdu or 'unlimited'}"
        )
        for uid in [VERIFICATION, *QUERY_RETRIEVE.values(), WORKLIST_FIND]:
            if uid in accepted:
                names = ", ".join(_name(s) for s in accepted[uid])
                step.details.append(f"accepts {_name(uid)}: {names}")
            else:
                step.details.append(f"refuses {_name(uid)} ({refused.get(uid, 'not answered')})")
        for uid in STORAGE:
            if uid in accepted:
                role = "with" if step.facts["accepted"][uid]["scp_role"] else "without"
                step.details.append(
                    f"accepts {_name(uid)} in {len(accepted[uid])} syntaxes, {role} the "
                    "storage role C-GET needs"
                )
            else:
                step.details.append(f"refuses {_name(uid)} ({refused.get(uid, 'not answered')})")
        problems = []
        if not any(QUERY_RETRIEVE[f"{m} find"] in accepted for m in ("study", "patient")):
            problems.append("no query (C-FIND) model")
        gets = any(QUERY_RETRIEVE[f"{m} get"] in accepted for m in ("study", "patient"))
        moves = any(QUERY_RETRIEVE[f"{m} move"] in accepted for m in ("study", "patient"))
        if node.method == "get" and not gets:
            problems.append("no C-GET, which this node retrieves by")
        if node.method == "move" and not moves:
            problems.append("no C-MOVE, which this node retrieves by")
        if VERIFICATION not in accepted:
            problems.append("no C-ECHO")
        summary = (
            f"{node.aet} accepts {len(accepted)} of the {len(accepted) + len(refused)} services "
            f"offered; maximum PDU {max_pdu or 'unlimited'}; "
            f"{acceptor.implementation_version_name or acceptor.implementation_class_uid}"
        )
        if not problems:
            step.set(OK, summary)
            return
        fix = ""
        if node.method == "get" and not gets and moves:
            fix = f"retrieve by C-MOVE: pacs-tui node edit {node.name} --method move"
        elif node.method == "move" and not moves and gets:
            fix = f"retrieve by C-GET: pacs-tui node edit {node.name} --method get"
        step.set(WARNING, f"{summary}; it offers {', '.join(problems)}", fix)

    # -- 3. C-ECHO -----------------------------------------------------------------------------

    def echo(self, step: Step) -> None:
        from tui.net.scu import echo

        if self.offered(VERIFICATION) is False:
            step.set(
                WARNING,
                "the PACS does not offer C-ECHO (Verification): the other steps "
                "say whether it works",
            )
            return
        total, round_trip = echo(self.node)
        step.facts |= {"echo_ms": round(round_trip * 1e3, 2), "total_ms": round(total * 1e3, 1)}
        step.set(OK, f"answered in {ms(round_trip)} ({ms(total)} with the association)")

    # -- 4. C-FIND at each level ---------------------------------------------------------------

    def find(self, step: Step) -> None:
        from tui.net.find import find

        levels: dict[str, dict[str, Any]] = {}
        step.facts["levels"] = levels
        study = series = ""
        uids = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
        plans = {
            "patient": ("patient", {"PatientID": "", "PatientName": ""}),
            "study": ("study", dict.fromkeys(uids[:1], "")),
            "series": ("study", dict.fromkeys(uids[:2], "")),
            "image": ("study", dict.fromkeys(uids, "")),
        }
        for level in self.LEVELS:
            model, keys = plans[level]
            if self.cancel is not None and self.cancel.is_set():
                return
            if level in ("series", "image"):
                if not study or (level == "image" and not series):
                    above = "study" if not study else "series"
                    levels[level] = {"skipped": f"no {above} to look into"}
                    step.details.append(f"{level}: skipped, no {above} to look into")
                    continue
                keys = {**keys, "StudyInstanceUID": study}
                if level == "image":
                    keys["SeriesInstanceUID"] = series
            sop_class = QUERY_RETRIEVE[f"{model} find"]
            if self.offered(sop_class) is False:
                levels[level] = {"skipped": f"{_name(sop_class)} not offered"}
                step.details.append(f"{level}: not offered ({_name(sop_class)})")
                continue
            started = time.perf_counter()
            try:
                found = list(
                    find(self.node, level, keys, model=model, limit=FIND_LIMIT, cancel=self.cancel)
                )
            except errors.NetError as exc:
                refused = isinstance(exc, errors.QueryRefused)
                levels[level] = {"error": str(exc), "refused": refused}
                step.details.append(f"{level}: {'refused' if refused else 'failed'}: {exc}")
                continue
            seconds = time.perf_counter() - started
            more = len(found) >= FIND_LIMIT
            levels[level] = {"count": len(found), "more": more, "ms": round(seconds * 1e3, 1)}
            count = f"{len(found)}{'+' if more else ''}"
            step.details.append(f"{level}: {count} matches in {ms(seconds)}")
            if level == "study" and found:
                study = found[0].get("StudyInstanceUID", "")
            elif level == "series" and found:
                series = found[0].get("SeriesInstanceUID", "")
            elif level == "image" and found and found[0].get("SOPInstanceUID"):
                self.instance = {**found[0], "StudyInstanceUID": study, "SeriesInstanceUID": series}
        worked = [lv for lv, r in levels.items() if "count" in r]
        failed = [lv for lv, r in levels.items() if "error" in r]
        summary = ", ".join(
            f"{lv} {r['count']}{'+' if r['more'] else ''}"
            for lv, r in levels.items()
            if "count" in r
        )
        if "study" not in worked:
            why = levels.get("study", {}).get("error") or levels.get("study", {}).get("skipped")
            step.set(FAILED, f"study-level queries do not work: {why}", self._query_fix())
            return
        if not study:
            step.set(
                WARNING,
                "the PACS shows us no studies: it holds none, or none for us",
                "the retrieve steps need one instance: store one on the PACS to test them",
            )
        elif failed:
            step.set(
                WARNING,
                f"{summary}; refused at {', '.join(failed)} level",
                "levels it refuses cannot be browsed; the others work",
            )
        else:
            step.set(OK, f"matches: {summary}")
        self._check_called_aet(step)

    def _query_fix(self) -> str:
        """What to do when study-level queries fail."""
        return (
            f"see the PACS's log; check it allows queries from our AE title {self.node.calling_aet}"
        )

    def _own_titles(self, study: str) -> list[str]:
        """The AE titles the PACS gives as its own in a C-FIND answer (RetrieveAETitle) for
        ``study``; [] when it gives none or the query fails (then nothing is checked).

        Not among the keys asked for: a PACS may answer a key asked for with an empty value
        (Orthanc does), and a PACS must include it unasked (PS3.4 C.4.1.1.3.2).
        """
        from pydicom.dataset import Dataset
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelFind as FIND_MODEL,
        )

        from tui.net.contexts import UNCOMPRESSED, context
        from tui.net.scu import associate

        ident = Dataset()
        ident.QueryRetrieveLevel = "STUDY"
        ident.StudyInstanceUID = study
        titles: list[str] = []
        try:
            with associate(self.node, [context(FIND_MODEL, UNCOMPRESSED)]) as assoc:
                for _, answer in assoc.send_c_find(ident, FIND_MODEL):
                    value = answer.get("RetrieveAETitle") if answer is not None else None
                    if value:
                        values = [value] if isinstance(value, str) else list(value)
                        titles += [str(v).strip() for v in values]
        except (errors.NetError, OSError, ValueError):
            log.debug("the RetrieveAETitle query failed", exc_info=True)
        return list(dict.fromkeys(t for t in titles if t))

    def _check_called_aet(self, step: Step) -> None:
        """A lax PACS answers any called AE title: the title it calls itself in its answers
        tells when the node's is wrong (a strict one refuses the association instead)."""
        node = self.node
        if not self.instance or self.offered(QUERY_RETRIEVE["study find"]) is False:
            return
        titles = self._own_titles(self.instance["StudyInstanceUID"])
        step.facts["retrieve_ae_titles"] = titles
        if titles:
            step.details.append(f"the PACS calls itself {', '.join(titles)} (RetrieveAETitle)")
        if not titles or node.aet in titles:
            return
        said = (
            f"the PACS calls itself {titles[0]} in its answers (RetrieveAETitle); the node "
            f"says {node.aet}"
        )
        fix = f"pacs-tui node edit {node.name} --aet {titles[0]}"
        if step.verdict == OK:
            step.set(WARNING, f"{step.summary}; but {said}", fix)
        else:
            fixes = "; ".join(filter(None, [step.fix, fix]))
            step.set(step.verdict, f"{step.summary}; and {said}", fixes)

    # -- 5. C-GET of one instance --------------------------------------------------------------

    def _identifier(self) -> Any:
        from pydicom.dataset import Dataset

        assert self.instance is not None
        ident = Dataset()
        ident.QueryRetrieveLevel = "IMAGE"
        ident.StudyInstanceUID = self.instance["StudyInstanceUID"]
        ident.SeriesInstanceUID = self.instance["SeriesInstanceUID"]
        ident.SOPInstanceUID = self.instance["SOPInstanceUID"]
        return ident

    def _severity(self, method: str) -> str:
        """A retrieve method the node does not use only warns when it fails."""
        return FAILED if self.node.method == method else WARNING

    def _other_method(self, failing: str) -> str:
        """The retrieve-method part of the fix when ``failing`` (get or move) does not work,
        worded by the method the node uses."""
        other = "move" if failing == "get" else "get"
        if self.node.method == failing:
            return (
                f"retrieve by C-{other.upper()} "
                f"(pacs-tui node edit {self.node.name} --method {other})"
            )
        return (
            f"not needed now: this node retrieves by C-{other.upper()}; C-{failing.upper()} "
            f"matters only with --method {failing}"
        )

    def get(self, step: Step) -> None:
        from tui.net.get import c_get
        from tui.net.status import GET, PENDING, category, status_text
        from tui.net.storage import Filer, Tally

        node = self.node
        if self.instance is None:
            step.set(SKIPPED, "skipped: no instance found at image level to retrieve")
            return
        if self.offered(QUERY_RETRIEVE["study get"]) is False:
            step.set(
                self._severity("get"),
                "the PACS does not offer C-GET (Study Root)",
                self._other_method("get"),
            )
            return
        sop_class = self.instance.get("SOPClassUID", "")
        tally = Tally()
        finals: list[tuple[int, str]] = []

        def on_response(command: Any) -> None:
            if command.status is not None and command.status not in PENDING:
                finals.append((command.status, command.error_comment))

        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="pacs-tui-test-") as folder:
            filer = Filer(Path(folder) / "archive")  # a throwaway archive, never the user's
            try:
                classes = {sop_class} if sop_class else set()
                c_get(
                    node,
                    [self._identifier()],
                    classes,
                    "study",
                    _spool(filer, tally),
                    on_response,
                    self.cancel,
                )
            except errors.NetError as exc:
                fix = self._other_method("get")
                text = str(exc)
                if "aborted the association" in text or "dropped the association" in text:
                    # The association and the queries worked: it is the C-GET it will not do.
                    text = (
                        f"the PACS broke off the C-GET: it does not allow C-GET from our AE "
                        f"title {node.calling_aet}, or failed sending the instance ({exc})"
                    )
                    fix = f"allow C-GET for {node.calling_aet} on the PACS; {fix}"
                step.set(self._severity("get"), text, "" if "method move" in text else fix)
                return
            finally:
                filer.close()
        seconds = time.perf_counter() - started
        step.facts |= {"received": tally.received, "bytes": tally.bytes}
        code, comment = finals[-1] if finals else (0, "")
        if tally.received:
            step.set(OK, f"one instance ({tally.bytes / 1e3:.0f} kB) in {ms(seconds)}")
            return
        text = status_text(code, GET) + (f" ({comment})" if comment else "")
        if category(code) == "Failure":
            fix = self._other_method("get")
            step.set(self._severity("get"), f"the PACS refused the C-GET: {text}", fix)
        else:
            why = tally.errors[0] if tally.errors else text
            step.set(self._severity("get"), f"the instance did not arrive: {why}")

    # -- 6. C-MOVE round trip ------------------------------------------------------------------

    def move(self, step: Step) -> None:
        from pynetdicom import evt

        from tui.net.receiver import Receiver
        from tui.net.storage import Filer, Tally

        node = self.node
        dest = node.destination
        if self.instance is None:
            step.set(SKIPPED, "skipped: no instance found at image level to retrieve")
            return
        if self.offered(QUERY_RETRIEVE["study move"]) is False:
            step.set(
                self._severity("move"),
                "the PACS does not offer C-MOVE (Study Root)",
                self._other_method("move"),
            )
            return
        calls: list[str] = []

        class Probe(Receiver):
            """Our storage SCP, noting every connection that reaches it."""

            def handlers(self) -> list[Any]:
                return [*super().handlers(), (evt.EVT_CONN_OPEN, lambda e: calls.append("tcp"))]

        ssl_context = None
        if node.tls and node.tls_cert:
            from tui.net.tls import server_context

            ssl_context = server_context(node.tls_cert, node.tls_key, node.tls_ca)
        tally = Tally()
        setting_up = time.perf_counter()  # our storage SCP's set-up is no part of the node's time
        with tempfile.TemporaryDirectory(prefix="pacs-tui-test-") as folder:
            filer = Filer(Path(folder) / "archive")  # a throwaway archive, never the user's
            receiver = Probe(
                filer, dest, port=self.receive_port, tally=tally, ssl_context=ssl_context
            )
            try:
                try:
                    receiver.start()
                except OSError as exc:
                    step.set(
                        WARNING,
                        f"our port {self.receive_port} is taken ({exc.strerror}): the round "
                        "trip cannot be tested while another program listens there",
                        "stop it (pacs-tui receive?), or test with --port PORT, a port the PACS "
                        f"knows for {dest}",
                    )
                    return
                port = receiver.port
                step.untimed = time.perf_counter() - setting_up
                step.facts |= {"destination": dest, "port": port}
                self._move(step, port, tally, calls)
            finally:
                stopping = time.perf_counter()
                receiver.stop()  # pynetdicom's server takes up to half a second to stop
                step.untimed += time.perf_counter() - stopping
                filer.close()

    def _move(self, step: Step, port: int, tally: Any, calls: list[str]) -> None:
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelMove as MOVE_MODEL,
        )

        from tui.net.contexts import UNCOMPRESSED, context
        from tui.net.scu import associate
        from tui.net.status import FAILED as FAILED_COUNT
        from tui.net.status import MOVE, category, status_text

        node, dest = self.node, self.node.destination
        us = f"{self.local_host or 'this machine'}:{port}"
        unreachable_fix = (
            f"the PACS must reach {dest} at {us}: open port {port} in the firewall (or forward "
            f"it through the NAT), and check the address and port the PACS has for {dest}"
        )
        other = self._other_method("move")
        unreachable_fix += f"; or {other}" if node.method == "move" else f" ({other})"
        started = time.perf_counter()
        probe: _Final | None = None
        with associate(node, [context(MOVE_MODEL, UNCOMPRESSED)]) as assoc:
            final = _c_move(assoc, self._identifier(), dest, 1)
            seconds = time.perf_counter() - started
            failed = final is not None and (
                category(final.code) != "Success" or final.counts.get(FAILED_COUNT, 0) > 0
            )
            if failed and not calls and not tally.received and final and final.code != 0xA801:
                # Unknown, or known but unreachable? Some PACS (Orthanc 1.10) answer both
                # alike: how it answers an AE title nobody has tells which it is.
                probe = _c_move(assoc, self._identifier(), _probe_aet(), 2)
        step.facts |= {"received": tally.received, "connections": len(calls)}
        if tally.received:
            step.set(OK, f"round trip in {ms(seconds)}: the PACS reached {dest} at {us}")
            return
        severity = self._severity("move")
        if final is None:
            if calls:
                step.set(
                    severity,
                    f"the PACS reached us at {us} but sent nothing within {node.dimse_timeout:g} s",
                    "see the PACS's log",
                )
            else:
                step.set(
                    severity,
                    f"no answer within {node.dimse_timeout:g} s and no "
                    f"connection reached our port {port}: the PACS cannot reach us",
                    unreachable_fix,
                )
            return
        text = status_text(final.code, MOVE) + (f" ({final.comment})" if final.comment else "")
        step.facts["status"] = f"0x{final.code:04X}"
        unknown_fix = (
            f"add {dest} at {us} on the PACS (its known nodes, or modalities), or set the "
            f"move destination to one it knows (pacs-tui node edit {node.name} "
            "--move-destination AET)"
        )
        if final.code == 0xA801:
            step.set(
                FAILED if node.method == "move" else WARNING,
                f"the PACS does not know our AE title {dest} as a move destination",
                unknown_fix,
            )
        elif calls:
            why = tally.errors[0] if tally.errors else text
            step.set(
                severity, f"the PACS reached us at {us} but the instance was not stored: {why}"
            )
        elif not failed:
            step.set(severity, f"the C-MOVE ended with {text} and no instance came")
        elif probe is not None and probe.code == final.code:
            step.set(
                severity,
                f"the C-MOVE failed ({text}) and nothing reached us; the PACS answers an "
                f"unknown AE title alike, so it is one of two: (1) it does not know {dest} as "
                f"a move destination, or (2) it knows {dest} but cannot reach us at port "
                f"{port}: a firewall or NAT is in the way, or it has {dest} at another address "
                "or port",
                f"(1) {unknown_fix}; (2) {unreachable_fix}",
            )
        else:
            step.set(
                severity,
                f"the PACS knows {dest} but cannot reach us at port {port}: a firewall or NAT "
                f"is in the way, or it has {dest} at another address or port ({text})",
                unreachable_fix,
            )

    # -- 7. modality worklist ------------------------------------------------------------------

    def worklist(self, step: Step) -> None:
        from contextlib import closing

        from tui.net.worklist import WorklistNotOffered, worklist, worklist_keys

        if self.offered(WORKLIST_FIND) is False:
            step.set(SKIPPED, "the node does not offer the modality worklist")
            return
        counts = {}
        for when, date in (("today", ""), ("in all", "any")):
            started = time.perf_counter()
            try:
                query = worklist(self.node, worklist_keys(date=date), FIND_LIMIT, self.cancel)
                with closing(query) as rows:
                    found = sum(1 for _ in rows)
            except WorklistNotOffered:
                step.set(SKIPPED, "the node does not offer the modality worklist")
                return
            except errors.QueryRefused as exc:
                step.set(WARNING, f"the worklist query was refused: {exc}")
                return
            counts[when] = found
            seconds = time.perf_counter() - started
            step.details.append(f"{_steps(found)} {when} ({ms(seconds)})")
        step.facts["scheduled"] = counts
        step.set(
            OK, f"{_steps(counts['today'])} scheduled today, {_steps(counts['in all'])} in all"
        )


def _steps(count: int) -> str:
    """``1 step``, ``2 steps``, ``50+ steps`` (the most a test counts)."""
    more = "+" if count >= FIND_LIMIT else ""
    return f"{count}{more} step" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class _Final:
    """A C-MOVE's final response: its status, sub-operation counts and error comment."""

    code: int
    counts: dict[int, int]
    comment: str


def _c_move(assoc: Any, identifier: Any, dest: str, message_id: int) -> _Final | None:
    """One C-MOVE to ``dest`` on pynetdicom's ``assoc``, read to its final response
    (None: none came, the PACS timed out or dropped the association)."""
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove as MOVE_MODEL,
    )

    from tui.net.status import COUNT_TAGS, PENDING

    final = None
    for status, _ in assoc.send_c_move(identifier, dest, MOVE_MODEL, msg_id=message_id):
        if not status or "Status" not in status:
            return None
        code = int(status.Status)
        if code not in PENDING:
            counts = {
                tag: int(status[tag].value)
                for tag in COUNT_TAGS
                if tag in status and status[tag].value is not None
            }
            final = _Final(code, counts, str(status.get("ErrorComment", "") or ""))
    return final


def _probe_aet() -> str:
    """An AE title no PACS has: a C-MOVE to it shows how the PACS answers an unknown one."""
    import secrets

    return f"NOSUCHAE{secrets.token_hex(4).upper()}"
