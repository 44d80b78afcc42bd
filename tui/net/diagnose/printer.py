"""Diagnostics of a DICOM printer node: the connection, the association (which print classes
it accepts), C-ECHO, and the printer's status (N-GET Printer), instead of a PACS's queries
and retrieves."""

from __future__ import annotations

import time
from typing import Any

from tui.net.diagnose.dimse import VERIFICATION, DimseRun, _name
from tui.net.diagnose.step import FAILED, OK, WARNING, Step, ms

META = "1.2.840.10008.5.1.1.9"  # Basic Grayscale Print Management Meta
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"
PRINT_CLASSES = (META, PRESENTATION_LUT, ANNOTATION_BOX)
_CONTEXT_RESULTS = {
    1: "refused",
    2: "refused, no reason given",
    3: "not supported",
    4: "none of our transfer syntaxes",
}


class PrinterRun(DimseRun):
    """The steps for a printer node."""

    STEPS: tuple[tuple[str, str], ...] = (
        ("connect", "name resolution and TCP connect"),
        ("associate", "association"),
        ("echo", "C-ECHO"),
        ("printer", "printer status (N-GET)"),
    )
    MODULES: tuple[str, ...] = (
        "pydicom.uid",
        "pydicom.dataset",
        "pynetdicom",
        "tui.net.scu",
        "tui.net.contexts",
        "tui.net.tls",
        "tui.net.status",
        "tui.net.printing",
    )

    def associate(self, step: Step) -> None:
        from tui.net.contexts import UNCOMPRESSED, context
        from tui.net.scu import make_ae
        from tui.net.tls import client_context

        node = self.node
        ae = make_ae(node)
        ae.requested_contexts = [
            context(uid, UNCOMPRESSED) for uid in (VERIFICATION, *PRINT_CLASSES)
        ]
        tls = (client_context(node), node.host) if node.tls else None
        started = time.monotonic()
        try:
            assoc = ae.associate(node.host, node.port, ae_title=node.aet, tls_args=tls)
            step.details.append(f"negotiated in {ms(time.monotonic() - started)}")
            if not assoc.is_established:
                self.fatal = "no association"
                self._not_established(step, assoc, time.monotonic() - started)
                return
            try:
                self._report_print_contexts(step, assoc)
            finally:
                assoc.release()
        finally:
            ae.shutdown()

    def _report_print_contexts(self, step: Step, assoc: Any) -> None:
        node = self.node
        accepted: dict[str, list[str]] = {}
        for cx in assoc.accepted_contexts:
            accepted.setdefault(str(cx.abstract_syntax), []).append(str(cx.transfer_syntax[0]))
        refused = {
            str(cx.abstract_syntax): _CONTEXT_RESULTS.get(cx.result, f"result {cx.result}")
            for cx in assoc.rejected_contexts
            if str(cx.abstract_syntax) not in accepted
        }
        self.accepted = accepted
        acceptor = assoc.acceptor
        max_pdu = int(acceptor.maximum_length or 0)
        step.facts |= {
            "ae_title": node.aet,
            "max_pdu": max_pdu,
            "implementation_class_uid": str(acceptor.implementation_class_uid or ""),
            "implementation_version_name": str(acceptor.implementation_version_name or ""),
            "accepted": {
                uid: {"name": _name(uid), "transfer_syntaxes": s} for uid, s in accepted.items()
            },
            "refused": {uid: {"name": _name(uid), "reason": why} for uid, why in refused.items()},
        }
        for uid in (VERIFICATION, *PRINT_CLASSES):
            if uid in accepted:
                step.details.append(f"accepts {_name(uid)}")
            else:
                step.details.append(f"refuses {_name(uid)} ({refused.get(uid, 'not answered')})")
        summary = (
            f"{node.aet} accepts {len(accepted)} of the {len(accepted) + len(refused)} services "
            f"offered; maximum PDU {max_pdu or 'unlimited'}; "
            f"{acceptor.implementation_version_name or acceptor.implementation_class_uid}"
        )
        if META not in accepted:
            self.fatal = "the printer refuses Basic Grayscale Print Management"
            from tui.net.printing.words import NO_GRAYSCALE_PRINT, NO_GRAYSCALE_PRINT_FIX

            step.set(FAILED, f"{summary}; it {NO_GRAYSCALE_PRINT}", NO_GRAYSCALE_PRINT_FIX)
            return
        missing = [
            what
            for uid, what in (
                (PRESENTATION_LUT, "no Presentation LUT"),
                (ANNOTATION_BOX, "no annotation boxes (no patient and study text on the film)"),
            )
            if uid not in accepted
        ]
        step.set(
            WARNING if missing else OK,
            summary + (f"; it has {', '.join(missing)}" if missing else ""),
        )

    def printer(self, step: Step) -> None:
        from tui.net.printing import printer_status

        state = printer_status(self.node)
        step.facts["printer"] = {"status": state.status, "info": state.info, **state.attributes}
        summary = f"{state.status or 'no status'}: the printer {state.words}"
        if state.status == "FAILURE":
            step.set(
                FAILED, summary, "see to the printer (its panel or its operator) before printing"
            )
        elif state.status == "WARNING":
            step.set(WARNING, summary)
        else:
            step.set(OK, summary)
