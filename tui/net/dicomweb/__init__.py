"""DICOMweb nodes: QIDO-RS (:mod:`.qido`), WADO-RS (:mod:`.wado`), STOW-RS (:mod:`.stow`).

:mod:`tui.net.find`, :mod:`tui.net.scu` (retrieve, send, echo) hand a node with a
``dicomweb`` URL to these modules, so every command and screen works with DICOMweb nodes as
with DIMSE ones. They never import those modules back (the import-cycle contract): the
queries (:class:`tui.net.find.Query`) and the counts (:class:`tui.net.scu.Transfer`,
:class:`~tui.net.scu.Sent`) come in as arguments.

The HTTP library, chosen by measurement: the standard library's :mod:`http.client`, with our
own streaming multipart reader (:mod:`.multipart`). Reading Orthanc's WADO-RS answer for a
300 x 512 x 512 CT study (157.5 MB, 300 parts) on loopback through the same multipart reader
into a null sink, best of three in one run (2-core machine):

================================  ========  ========
library, read call                 wall s     CPU s
================================  ========  ========
http.client ``read1(1 MiB)``        0.209     0.057
http.client ``read(1 MiB)``         0.194     0.071
urllib3 2.7 ``read(1 MiB)``         0.181     0.078
urllib3 2.7 ``read1(1 MiB)``        0.213     0.083
httpx 0.29 ``iter_raw(1 MiB)``      0.448     0.420
================================  ========  ========

http.client and urllib3 (which is http.client underneath, plus a pool) are as fast as each
other; httpx costs over twice the time and seven times the CPU. http.client adds no
dependency, is maintained with Python itself, and its ``read1`` hands over what the socket
has without waiting to fill the buffer. dicomweb-client 0.61 (PyPI) cannot be the library:
its ``retrieve_study`` reads the whole answer into memory (``requests``'
``response.content``) before splitting it, and its streaming ``iter_study`` still gathers
each part whole and parses it with pydicom (a 1 GB part is a GB of memory). It is the
anchor of ``benchmarks/bench_wado.py``, beside ``curl``.
"""
