"""Repository against real git repositories built in temporary directories."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from core.errors import MrcError, NotFound
from core.git import (
    CommitNotFound,
    EmptyRepository,
    NotARepository,
    Repository,
    UnreadableObject,
)
from core.sanitize import clean_line
from tests.support.repos import (
    AUTHORS,
    BASE_TIME,
    HOSTILE_SUBJECTS,
    HistoryRepo,
    commit_files,
    git,
    init_repo,
    make_history_repo,
    make_hostile_repo,
)

pytestmark = pytest.mark.integration

COMMITS = 12


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> HistoryRepo:
    return make_history_repo(tmp_path_factory.mktemp("history") / "repo", COMMITS)


@pytest.fixture(scope="module")
def repo(history: HistoryRepo) -> Repository:
    return Repository(history.path)


def newest_first(history: HistoryRepo) -> list[str]:
    return list(reversed(history.shas))


# ------------------------------------------------------------------ log paging


def test_first_page_is_newest_first_with_fields(repo: Repository, history: HistoryRepo) -> None:
    page = repo.page(limit=5)
    assert [c.sha for c in page] == newest_first(history)[:5]
    top = page[0]
    i = COMMITS - 1
    assert top.subject == f"change {i}: update file{i % 4}"
    assert top.author == AUTHORS[i % 3]
    assert top.email == AUTHORS[i % 3].split()[0].lower() + "@example.com"
    assert top.date.timestamp() == BASE_TIME + i * 3600
    assert top.date.utcoffset() is not None
    assert top.parents == (history.shas[i - 1],)
    assert repo.page(limit=COMMITS)[-1].parents == ()


def test_pages_with_skip_cover_history_exactly_once(repo: Repository, history: HistoryRepo) -> None:
    seen = []
    for skip in range(0, COMMITS + 5, 5):
        seen.extend(c.sha for c in repo.page(limit=5, skip=skip))
    assert seen == newest_first(history)
    assert repo.page(limit=5, skip=COMMITS) == []
    assert repo.page(limit=0) == []


def test_cursor_streams_history_page_by_page(repo: Repository, history: HistoryRepo) -> None:
    with repo.cursor() as cursor:
        pages = [cursor.next_page(5) for _ in range(3)]
        assert cursor.exhausted
        assert cursor.next_page(5) == []
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [c.sha for p in pages for c in p] == newest_first(history)


def test_cursor_closed_early_stops_git(repo: Repository) -> None:
    cursor = repo.cursor()
    assert len(cursor.next_page(2)) == 2
    proc = cursor._proc
    assert proc is not None
    cursor.close()
    assert proc.returncode is not None
    cursor.close()  # idempotent


def test_page_from_start_ref(repo: Repository, history: HistoryRepo) -> None:
    page = repo.page(start="v1.0")
    assert [c.sha for c in page] == list(reversed(history.shas[:3]))
    with pytest.raises(CommitNotFound, match="no-such-tag"):
        repo.page(start="no-such-tag")


def test_tags_and_branches_decorate_commits(repo: Repository, history: HistoryRepo) -> None:
    by_sha = {c.sha: c for c in repo.page(limit=100)}
    assert by_sha[history.tags["v1.0"]].tags == ("v1.0",)
    assert by_sha[history.tags["v1.1"]].tags == ("v1.1",)
    assert by_sha[history.branches["feature"]].branches == ("feature",)
    assert by_sha[history.shas[-1]].branches == ("main",)
    assert by_sha[history.shas[0]].tags == () and by_sha[history.shas[0]].branches == ()


def test_tags_and_branches_listing(repo: Repository, history: HistoryRepo) -> None:
    tags = {t.name: t.sha for t in repo.tags()}
    assert tags == history.tags  # the annotated tag is peeled to its commit
    branches = {b.name: (b.sha, b.kind) for b in repo.branches()}
    assert branches == {
        "main": (history.shas[-1], "branch"),
        "feature": (history.branches["feature"], "branch"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("CHANGE 7:", [7]),
        ("grace", [i for i in range(COMMITS - 1, -1, -1) if i % 3 == 1]),
        ("alan@example", [i for i in range(COMMITS - 1, -1, -1) if i % 3 == 2]),
        ("nothing matches this", []),
    ],
)
def test_search_by_subject_and_author(
    repo: Repository, history: HistoryRepo, query: str, expected: list[int]
) -> None:
    assert [c.sha for c in repo.page(search=query)] == [history.shas[i] for i in expected]


def test_search_by_sha_prefix_and_paging(repo: Repository, history: HistoryRepo) -> None:
    target = history.shas[4]
    assert [c.sha for c in repo.page(search=target[:8].upper())] == [target]
    grace = [history.shas[i] for i in range(COMMITS - 1, -1, -1) if i % 3 == 1]
    assert [c.sha for c in repo.page(search="Grace", limit=2, skip=1)] == grace[1:3]


def test_count(repo: Repository) -> None:
    assert repo.count() == COMMITS
    assert repo.count("v1.0") == 3


def test_tail_is_the_count_and_the_last_page(repo: Repository, history: HistoryRepo) -> None:
    total, commits = repo.tail(5)
    assert total == COMMITS
    assert [c.sha for c in commits] == newest_first(history)[-5:]
    assert [c.sha for c in commits] == [c.sha for c in repo.page(limit=5, skip=COMMITS - 5)]
    assert commits[-1].parents == ()  # the root commit, with its fields
    total, commits = repo.tail(50, start="v1.0")
    assert (total, [c.sha for c in commits]) == (3, history.shas[2::-1])


def test_tail_of_a_merge_history_is_in_log_order(tmp_path: Path) -> None:
    init_repo(tmp_path)
    for i in range(4):
        commit_files(tmp_path, {"a.txt": f"{i}\n"}, f"main {i}", when=BASE_TIME + i * 120)
    git(tmp_path, "checkout", "-q", "-b", "side", "HEAD~2")
    for i in range(3):
        commit_files(tmp_path, {"s.txt": f"{i}\n"}, f"side {i}", when=BASE_TIME + 60 + i * 120)
    git(tmp_path, "checkout", "-q", "main")
    git(tmp_path, "merge", "-q", "--no-ff", "-m", "merge", "side", when=BASE_TIME + 1000)
    repository = Repository(tmp_path)
    everything = [c.sha for c in repository.page(limit=100)]
    total, commits = repository.tail(6)
    assert total == len(everything) == 8
    assert [c.sha for c in commits] == everything[-6:]


def test_tail_of_an_empty_repository(tmp_path: Path) -> None:
    repository = Repository(init_repo(tmp_path / "empty"))
    with pytest.raises(EmptyRepository):
        repository.tail()


# ------------------------------------------------------------------ detail


def test_detail_has_message_stat_and_diff(repo: Repository, history: HistoryRepo) -> None:
    detail = repo.detail(history.shas[5][:10])
    assert detail.commit.sha == history.shas[5]
    assert detail.message.startswith("change 5: update file1\n\nBody of change 5.")
    # file1 had 2 lines (change 1) and gets 6 (change 5)
    assert [(s.path, s.insertions, s.deletions) for s in detail.stats] == [("data/file1.txt", 6, 2)]
    assert "diff --git a/data/file1.txt b/data/file1.txt" in detail.diff
    assert detail.diff.count("+line for change 5") == 6
    assert not detail.diff_truncated


def test_detail_of_root_commit_shows_added_file(repo: Repository, history: HistoryRepo) -> None:
    detail = repo.detail(history.shas[0])
    assert [(s.path, s.insertions, s.deletions) for s in detail.stats] == [("data/file0.txt", 1, 0)]
    assert "new file mode" in detail.diff


def test_huge_diff_is_truncated_at_a_line_end(tmp_path: Path) -> None:
    init_repo(tmp_path)
    big = "".join(f"line {i} " + "y" * 80 + "\n" for i in range(30_000))
    sha = commit_files(tmp_path, {"big.txt": big}, "big file", when=BASE_TIME)
    detail = Repository(tmp_path).detail(sha, max_diff_bytes=100_000)
    assert detail.diff_truncated
    assert 90_000 < len(detail.diff.encode()) <= 100_000
    assert detail.diff.endswith("\n")
    assert detail.stats[0].insertions == 30_000


def test_detail_of_merge_is_against_first_parent(tmp_path: Path) -> None:
    init_repo(tmp_path)
    commit_files(tmp_path, {"a.txt": "a\n"}, "base", when=BASE_TIME)
    git(tmp_path, "checkout", "-q", "-b", "side")
    commit_files(tmp_path, {"side.txt": "s\n"}, "side work", when=BASE_TIME + 60)
    git(tmp_path, "checkout", "-q", "main")
    commit_files(tmp_path, {"a.txt": "a2\n"}, "main work", when=BASE_TIME + 120)
    git(tmp_path, "merge", "-q", "--no-ff", "-m", "Merge side", "side", when=BASE_TIME + 180)
    repository = Repository(tmp_path)
    merge = repository.page(limit=1)[0]
    assert len(merge.parents) == 2
    detail = repository.detail(merge.sha)
    assert [s.path for s in detail.stats] == ["side.txt"]
    assert "+s" in detail.diff


# ------------------------------------------------------------------ refs and contents


def test_resolve(repo: Repository, history: HistoryRepo) -> None:
    assert repo.resolve(history.shas[3][:7]) == history.shas[3]
    assert repo.resolve("v1.0") == history.shas[2]
    assert repo.resolve("feature") == history.branches["feature"]
    assert repo.head() == history.shas[-1]
    for bad in ("abc1234", "--all", "", "main bad"):
        with pytest.raises(CommitNotFound) as err:
            repo.resolve(bad)
        assert f"commit {bad!r} not found in {history.path}" == str(err.value)


def test_deployed_map_resolves_short_shas(repo: Repository, history: HistoryRepo) -> None:
    mapping = repo.deployed_map(
        [
            ("prod", history.shas[3][:8]),
            ("staging", history.shas[3]),
            ("prod", history.shas[3]),
            ("canary", history.shas[-1][:12]),
            ("elsewhere", "0123456789abcdef"),
            ("blank", ""),
            ("weird", "-x y"),
        ]
    )
    assert mapping == {history.shas[3]: ["prod", "staging"], history.shas[-1]: ["canary"]}
    assert repo.deployed_map([]) == {}


def test_worktree_checks_out_commit_and_leaves_user_tree_alone(
    repo: Repository, history: HistoryRepo
) -> None:
    user_file = history.path / "data" / "file0.txt"
    original = user_file.read_text()
    user_file.write_text("uncommitted edit\n")
    status_before = git(history.path, "status", "--porcelain")
    try:
        with repo.worktree(history.shas[1]) as tree:
            assert (tree / "data" / "file1.txt").read_text() == "line for change 1\n" * 2
            assert not (tree / "data" / "file2.txt").exists()
            assert git(tree, "rev-parse", "HEAD") == history.shas[1]
            (tree / "scratch.txt").write_text("left behind by tests\n")
        assert not tree.exists()
        assert not tree.parent.exists()
        assert user_file.read_text() == "uncommitted edit\n"
        assert git(history.path, "status", "--porcelain") == status_before
        assert git(history.path, "rev-parse", "HEAD") == history.shas[-1]
        assert len(git(history.path, "worktree", "list").splitlines()) == 1
    finally:
        user_file.write_text(original)


def test_worktree_is_removed_when_the_body_raises(repo: Repository, history: HistoryRepo) -> None:
    with pytest.raises(RuntimeError), repo.worktree(history.shas[0]) as tree:
        raise RuntimeError("boom")
    assert not tree.exists()
    assert len(git(history.path, "worktree", "list").splitlines()) == 1


def test_archive_and_file_at(repo: Repository, history: HistoryRepo, tmp_path: Path) -> None:
    data = repo.archive(history.shas[1])
    assert isinstance(data, bytes)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == [
            "data/file0.txt",
            "data/file1.txt",
        ]
    dest = repo.archive(history.shas[1], tmp_path / "src.tar")
    assert dest == tmp_path / "src.tar" and dest.read_bytes() == data
    assert repo.file_at(history.shas[1], "data/file1.txt") == b"line for change 1\n" * 2
    with pytest.raises(NotFound, match=r"data/file9\.txt does not exist at commit"):
        repo.file_at(history.shas[1], "data/file9.txt")


def test_export_writes_the_tree_of_a_commit(
    repo: Repository, history: HistoryRepo, tmp_path: Path
) -> None:
    dest = repo.export(history.shas[1][:10], tmp_path / "out" / "tree")
    assert dest == tmp_path / "out" / "tree"
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["data/file0.txt", "data/file1.txt"]
    assert (dest / "data/file1.txt").read_bytes() == b"line for change 1\n" * 2
    with pytest.raises(CommitNotFound):
        repo.export("no-such-commit", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_export_refuses_a_link_out_of_the_destination(tmp_path: Path) -> None:
    path = init_repo(tmp_path / "links")
    (path / "inside").symlink_to("../../outside-secret")
    git(path, "add", "inside")
    commit_files(path, {"README": "x\n"}, "a link pointing out", when=BASE_TIME)
    dest = tmp_path / "out" / "tree"
    with pytest.raises(MrcError, match="cannot export commit"):
        Repository(path).export("HEAD", dest)
    assert not (dest / "inside").is_symlink()


# ------------------------------------------------------------------ errors


def test_opens_from_a_subdirectory_a_bare_clone_and_a_linked_worktree(
    history: HistoryRepo, tmp_path: Path
) -> None:
    inside = history.path / "sub" / "dir"
    inside.mkdir(parents=True, exist_ok=True)
    from_inside = Repository(inside)
    assert from_inside.root == history.path.resolve()
    assert from_inside.git_dir == (history.path / ".git").resolve()
    assert not from_inside.is_bare
    assert from_inside.resolve("HEAD") == history.shas[-1]

    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(history.path), str(bare))
    opened = Repository(bare)
    assert opened.is_bare and opened.root == bare.resolve() == opened.git_dir
    assert opened.resolve("HEAD") == history.shas[-1]

    linked = tmp_path / "linked"
    git(history.path, "worktree", "add", "-q", "--detach", str(linked), history.shas[0])
    try:
        worktree = Repository(linked)
        assert worktree.root == linked.resolve()
        assert worktree.common_dir == (history.path / ".git").resolve()
        assert worktree.resolve("HEAD") == history.shas[0]
    finally:
        git(history.path, "worktree", "remove", "--force", str(linked))


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(NotARepository, match="is not a git repository"):
        Repository(tmp_path)
    with pytest.raises(NotARepository, match="does not exist"):
        Repository(tmp_path / "missing")


def test_empty_repository(tmp_path: Path) -> None:
    repository = Repository(init_repo(tmp_path / "empty"))
    assert repository.is_empty
    message = f"repository {repository.root} has no commits yet"
    with pytest.raises(EmptyRepository, match=message):
        repository.page()
    with pytest.raises(EmptyRepository, match=message):
        repository.head()
    with pytest.raises(EmptyRepository, match=message), repository.cursor() as cursor:
        cursor.next_page()


def test_shallow_clone_works_with_warning(history: HistoryRepo, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{history.path}", str(clone)], check=True
    )
    repository = Repository(clone)
    assert repository.is_shallow
    assert "shallow clone" in repository.warning and "--unshallow" in repository.warning
    page = repository.page()
    assert [c.sha for c in page] == [history.shas[-1]]
    assert not Repository(history.path).is_shallow
    assert Repository(history.path).warning == ""


def test_missing_commit_detail(repo: Repository, history: HistoryRepo) -> None:
    with pytest.raises(CommitNotFound, match=f"commit 'deadbeef' not found in {history.path}"):
        repo.detail("deadbeef")


def _object_path(repo: Path, sha: str) -> Path:
    return repo / ".git" / "objects" / sha[:2] / sha[2:]


def test_unreadable_objects(tmp_path: Path) -> None:
    history = make_history_repo(tmp_path / "corrupt", 4)
    blob = git(history.path, "rev-parse", f"{history.shas[1]}:data/file1.txt")
    _object_path(history.path, blob).unlink()
    repository = Repository(history.path)
    with pytest.raises(UnreadableObject, match="git fsck"):
        repository.detail(history.shas[1])
    with pytest.raises(UnreadableObject):
        repository.file_at(history.shas[1], "data/file1.txt")
    _object_path(history.path, history.shas[1]).unlink()
    with pytest.raises(MrcError) as err:
        repository.page()
    assert isinstance(err.value, UnreadableObject)
    assert str(history.path) in str(err.value)
    with pytest.raises(UnreadableObject):
        repository.tail(2)  # neither a count nor an oldest page from a broken history


def test_tail_of_a_history_shorter_than_the_page(tmp_path: Path) -> None:
    history = make_history_repo(tmp_path / "short", 3)
    total, commits = Repository(history.path).tail(200)
    assert (total, [c.sha for c in commits]) == (3, history.shas[::-1])


# ------------------------------------------------------------------ hostile text


def test_hostile_subjects_are_returned_as_data(tmp_path: Path) -> None:
    hostile = make_hostile_repo(tmp_path / "hostile")
    page = Repository(hostile.path).page()
    subjects = [c.subject for c in reversed(page)]
    assert len(subjects) == len(HOSTILE_SUBJECTS)
    assert subjects[0] == HOSTILE_SUBJECTS[0].decode()  # markup kept verbatim
    assert "\x1b" in subjects[1] and "\x1b" not in clean_line(subjects[1])
    assert clean_line(subjects[1]) == "ansi ␛red␛ and osc ␛ done"
    assert len(subjects[2]) == 10_005
    assert "\ufffd" in subjects[3]
    assert subjects[4] == HOSTILE_SUBJECTS[4].decode()
