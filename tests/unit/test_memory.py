"""The heap trimmer's policy: trim only after the resident size grows `headroom` past its floor."""
import hsafeat.memory as memory


def run(monkeypatch, sizes, headroom=100):
    sizes = iter(sizes)
    trims = []
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(sizes))
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: trims.append(pad))
    trimmer = memory.HeapTrimmer(headroom)
    try:
        while True:
            trimmer.after_batch()
    except StopIteration:  # the sizes ran out
        return trimmer, trims


def test_trims_only_past_the_headroom_and_then_takes_a_new_floor(monkeypatch):
    # floor 1000 (first batch); 1100 is not past 1000 + 100; 1101 is -> trim; the batch after the
    # trim sets the new floor (500), so 590 does not trim and 601 does.
    trimmer, trims = run(monkeypatch, [1000, 1050, 1100, 1101, 500, 590, 601, 700])
    assert trimmer.trims == len(trims) == 2
    assert trimmer.floor == 700


def test_without_proc_it_trims_every_few_batches(monkeypatch):
    trims = []
    monkeypatch.setattr(memory, "resident_bytes", lambda: None)
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: trims.append(pad))
    trimmer = memory.HeapTrimmer()
    for _ in range(3 * memory.FALLBACK_EVERY):
        trimmer.after_batch()
    assert len(trims) == 3


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(memory, "_MALLOC_TRIM", None)
    trimmer = memory.HeapTrimmer(headroom=0)
    for _ in range(20):
        trimmer.after_batch()
    assert trimmer.trims == 0


def test_resident_bytes_reads_this_process():
    rss = memory.resident_bytes()
    assert rss is None or 10 << 20 < rss < 64 << 30
