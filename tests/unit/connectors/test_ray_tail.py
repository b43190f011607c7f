"""The RAY log follower's bookkeeping: each byte kept once across replays, a bounded window, caught-up frames."""

from __future__ import annotations

from connectors.ray.tail import RAY_CHUNK_LINES, LogFollower


def follower(window: int = 1024) -> LogFollower:
    return LogFollower("ws://127.0.0.1:9/api/jobs/x/logs/tail", {}, window=window, open_timeout=1)


def test_a_replay_after_a_reconnect_adds_only_what_is_new() -> None:
    tail = follower()
    seen = tail._take("line 1\nline 2\n", 0)
    assert tail.received == 14 and seen == 14
    # Ray streams from the first byte again, cut into other frames: nothing is kept twice
    seen = tail._take("line 1\nli", 0)
    seen = tail._take("ne 2\nline 3\n", seen)
    assert tail.received == 21 and tail.read(0, 100).data == b"line 1\nline 2\nline 3\n"


def test_the_window_keeps_the_last_bytes_and_reads_say_where_they_start() -> None:
    tail = follower(window=8)
    tail._take("0123456789abcdef\n", 0)
    chunk = tail.read(0, 100)
    assert chunk.start == 9 and chunk.data == b"9abcdef\n"[-8:] and chunk.next_offset == 17
    assert tail.read(-3, 100).data == b"ef\n" and tail.read(-3, 100).next_offset == 17
    assert tail.read(12, 2).data == b"cd"
    ahead = tail.read(40, 10)  # a reader ahead of a follower that started again
    assert ahead.data == b"" and ahead.start == ahead.next_offset == 40


def test_a_short_frame_means_ray_reached_the_end_of_the_file() -> None:
    tail = follower()
    tail._take("".join(f"{i}\n" for i in range(RAY_CHUNK_LINES)), 0)
    assert not tail.caught_up.is_set()
    tail._take("last\n", tail.received)
    assert tail.caught_up.is_set()


def test_progress_lines_are_parsed_as_they_stream_in() -> None:
    tail = follower()
    tail._take('AICN_PROGRESS {"fraction": 0.5}\nAICN_PROG', 0)
    tail._take('RESS {"fraction": 1.0}\n', tail.received)
    assert [report.fraction for report in tail.cursor.after(0)] == [0.5, 1.0]
