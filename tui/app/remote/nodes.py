"""The node list: the PACS of config.toml, the highlighted one's address and its echo; ``t``
tests the highlighted node step by step (:mod:`tui.app.remote.diagnose`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.errors import UserError
from tui.net.nodes import Node, load_nodes

log = logging.getLogger(__name__)

_NODES_WIDTH = 18  # the node pane at least: an IPv4 address fits its detail box on one line


class NodePane(Vertical):
    """The nodes by name; below them, the highlighted one's AE title, address, how it
    retrieves, and its last echo. Queries go to the highlighted node."""

    BINDINGS = [
        Binding("t", "test", "Test", tooltip="Test the node step by step", id="remote.test"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodes: dict[str, Node] = {}
        self.echoes: dict[str, str] = {}  # node name: the last echo's outcome
        self._echoing: dict[str, threading.Event] = {}  # node name: its echo's stop flag

    def compose(self) -> ComposeResult:
        yield OptionList(id="nodes")
        yield Static("", id="node-status")

    def on_unmount(self) -> None:
        """The app is closing: no echo holds the exit up."""
        for stop in self._echoing.values():
            stop.set()

    def load(self) -> None:
        """The nodes of config.toml, read again (one added in a shell meanwhile is there); the
        highlighted one stays highlighted. The screen shows how to add one when there are none."""
        config_dir = getattr(self.app, "config_dir", None)
        options = self.query_one("#nodes", OptionList)
        current = self.node.name if self.node is not None else None
        try:
            found = load_nodes(config_dir / "config.toml") if config_dir else {}
            # a printer only prints (the print dialog's): no query, retrieve or echo here
            self.nodes = {name: node for name, node in found.items() if not node.printer}
        except UserError as exc:
            self.nodes = {}
            self.notify(str(exc), severity="error")
        options.clear_options()
        options.add_options(  # names only: the AE title and address are in the box below
            Option(Text(name, style="bold"), id=name) for name in sorted(self.nodes)
        )
        self.screen.set_class(not self.nodes, "no-nodes")
        if self.nodes:
            names = sorted(self.nodes)
            options.highlighted = names.index(current) if current in names else 0
        self.fit()
        self._show_node()

    def fit(self) -> None:
        """As wide as the longest name or host, within a quarter of the screen: at 80 columns
        the results need the room more (a longer name ends in "…", a longer host wraps)."""
        # Beside a name: its padding (2), the focus bar and the rule on the right (1 each);
        # beside a host in the box below: a padding of 1, the bar and the rule.
        needed = max(
            [cell_len(name) + 4 for name in self.nodes]
            + [cell_len(node.host) + 3 for node in self.nodes.values() if not node.dicomweb],
            default=0,
        )
        widest = max(_NODES_WIDTH, self.screen.size.width // 4)
        self.styles.width = min(max(needed, _NODES_WIDTH), widest)

    @property
    def node(self) -> Node | None:
        """The highlighted node: queries go to it."""
        options = self.query_one("#nodes", OptionList)
        if options.highlighted is None or not self.nodes:
            return None
        option = options.get_option_at_index(options.highlighted)
        return self.nodes.get(option.id or "")

    @on(OptionList.OptionHighlighted, "#nodes")
    def _show_node(self) -> None:
        node = self.node
        status = self.query_one("#node-status", Static)
        if node is None:
            status.update("")
            return
        echo = "\n" + self.echoes.get(node.name, "e: echo")
        if node.dicomweb:  # the URL alone on its line: a long one wraps whole
            auth = "" if node.auth == "none" else f" · {node.auth} auth"
            status.update(Text.assemble(("DICOMweb", "bold"), f"\n{node.dicomweb}\n",
                                        "WADO-RS" + auth, echo))  # fmt: skip
            return
        how = "C-GET" if node.method == "get" else f"C-MOVE to {node.destination}"
        # The host alone on its line: a long one wraps whole, not cut at its port.
        status.update(
            Text.assemble(
                (node.aet, "bold"),
                f"\n{node.host}\nport {node.port}\n",
                how + (" · TLS" if node.tls else ""),
                echo,
            )
        )

    # -- test ---------------------------------------------------------------------------------

    def action_test(self) -> None:
        """The highlighted node tested step by step, in a panel showing each step live."""
        from tui.app.remote.diagnose import DiagnoseScreen

        node = self.node
        if node is None:
            self.notify("no node to test: pacs-tui node add NAME AET HOST PORT", severity="warning")
            return
        config_dir = getattr(self.app, "config_dir", None)
        config_file = config_dir / "config.toml" if config_dir else None
        self.app.push_screen(DiagnoseScreen(node, config_file))

    # -- echo ---------------------------------------------------------------------------------

    def echo(self) -> None:
        """A C-ECHO to the highlighted node; its outcome shows in the box and as a notice."""
        node = self.node
        if node is None:
            self.notify("no node to echo: pacs-tui node add NAME AET HOST PORT", severity="warning")
            return
        if node.name in self._echoing:
            return  # one echo at a time per node: it answers or times out
        stop = self._echoing[node.name] = threading.Event()
        self.echoes[node.name] = "echo… Esc stops"
        self._show_node()
        self.echo_node(node, stop)

    @work(thread=True, group="echo")
    def echo_node(self, node: Node, stop: threading.Event) -> None:
        from tui.net.scu import echo

        try:
            total, _ = echo(node)
        except UserError as exc:
            self.app.call_from_thread(self._echoed, node, stop, "✘ no echo", str(exc), "error")
            return
        except Exception as exc:  # pynetdicom's surprises: a notice, never a traceback
            log.debug("echo failed", exc_info=True)
            self.app.call_from_thread(
                self._echoed, node, stop, "✘ no echo", f"echo failed: {exc}", "error"
            )
            return
        ms = f"{total * 1000:.0f} ms"
        self.app.call_from_thread(
            self._echoed,
            node,
            stop,
            f"echo {ms}",
            f"{node.name} ({node.address}): echo {ms}",
            "information",
        )

    def _echoed(
        self, node: Node, stop: threading.Event, status: str, message: str, severity: Any
    ) -> None:
        if stop.is_set():
            return  # stopped with Esc: the user has moved on, a late answer is no news
        self._echoing.pop(node.name, None)
        self.echoes[node.name] = status
        self._show_node()
        self.notify(message, severity=severity, timeout=8 if severity == "error" else 4)

    def stop_echoes(self) -> bool:
        """Esc: every echo still waiting shows stopped at once (the worker waits out its
        timeout; its answer is dropped). False when none was waiting."""
        if not self._echoing:
            return False
        for name, stop in self._echoing.items():
            stop.set()
            self.echoes[name] = "echo stopped"
        self._echoing.clear()
        self._show_node()
        return True
