"""Diagnostics of a DICOM printer node: the connection, the association (which print classes
it accepts), C-ECHO, and the printer's status (N-GET Printer), instead of a PACS's queries
and retrieves."""

from __future__ import annotations

from typing import Any

from tui.net.diagnose.dimse import VERIFICATION, DimseRun, _name
from tui.net.diagnose.step import FAILED, OK, WARNING, Step
from tui.net.printing.scu import ANNOTATION_BOX, META, PRESENTATION_LUT

PRINT_CLASSES = (META, PRESENTATION_LUT, ANNOTATION_BOX)


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

    def _proposal(self) -> tuple[list[Any], list[Any]]:
        from tui.net.contexts import UNCOMPRESSED, context

        return [context(uid, UNCOMPRESSED) for uid in (VERIFICATION, *PRINT_CLASSES)], []

    def _report_contexts(self, step: Step, assoc: Any) -> None:
        node = self.node
        accepted, refused = self._negotiated(step, assoc)
        acceptor = assoc.acceptor
        max_pdu = int(acceptor.maximum_length or 0)
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
