"""Channel grammar, wildcard patterns and expand(): spec §2 and §6 "Grammar and channels"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faye.protocol import channels
from faye.protocol.channels import expand, is_meta, is_name, is_pattern, is_service, matches

SEGMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_!~()$@"
BAD_CHARS = ". %+:=#*/\\?&\"'\n\t\x00é日\u2028"

segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=6)
segment_lists = st.lists(segments, min_size=1, max_size=5)
names = segment_lists.map(lambda segs: "/" + "/".join(segs))


def reference_matches(pattern: str, name: str) -> bool:
    """Independent definition: `*` is exactly one segment, `**` one or more, else equality."""
    p = pattern.split("/")[1:]
    n = name.split("/")[1:]
    if p and p[-1] == "**":
        prefix = p[:-1]
        return len(n) > len(prefix) and n[: len(prefix)] == prefix
    if p and p[-1] == "*":
        prefix = p[:-1]
        return len(n) == len(prefix) + 1 and n[: len(prefix)] == prefix
    return p == n


def candidate_patterns(name: str) -> set[str]:
    """Every wildcard-ended pattern and exact name that could conceivably match ``name``."""
    segs = name.split("/")[1:]
    out = {name}
    for i in range(len(segs) + 1):
        prefix = "/".join(segs[:i])
        base = "/" + prefix + "/" if prefix else "/"
        out.add(base + "*")
        out.add(base + "**")
    return out


# -- examples from the spec ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["/fo_o/$@()bar", "/a", "/A-Z/a_z/0-9/!~()$@", "/meta/connect", "/service/x", "/meta"],
)
def test_valid_names(name: str) -> None:
    assert is_name(name)
    assert not is_pattern(name)
    assert channels.is_valid(name)


@pytest.mark.parametrize(
    "channel",
    [
        "foo/$@()bar",
        "/foo/$@()bar/",
        "/fo o/$@()bar",
        "",
        "/",
        "//",
        "/a//b",
        "/a.b",
        "/a%20",
        "/a+b",
        "/a:b",
        "/a=b",
        "/a#b",
        "/é",
        "/a\n",
        "\n/a",
        "/a/\n",
    ],
)
def test_invalid_names(channel: str) -> None:
    assert not is_name(channel)
    assert not is_pattern(channel)
    assert not channels.is_valid(channel)


@pytest.mark.parametrize("value", [None, 1, ["/a"], {"channel": "/a"}, b"/a"])
def test_non_strings_are_never_channels(value: object) -> None:
    assert not is_name(value)
    assert not is_pattern(value)
    assert not channels.is_subscribable(value)
    assert not is_meta(value)


def test_foo_double_star_is_a_pattern_not_a_name() -> None:
    assert not is_name("/foo/**")
    assert is_pattern("/foo/**")
    assert is_pattern("/foo/*")


@pytest.mark.parametrize("pattern", ["/*", "/**", "/a/*", "/a/b/**"])
def test_valid_patterns(pattern: str) -> None:
    assert is_pattern(pattern)
    assert not is_name(pattern)


@pytest.mark.parametrize(
    "channel", ["/fo_o/$@()bar", "/foo/**/*", "/a/*/b", "/a*", "/a/**b", "/***", "/*\n", "*", "**"]
)
def test_not_patterns(channel: str) -> None:
    assert not is_pattern(channel)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/foo", ["/**", "/foo", "/*"]),
        ("/foo/bar", ["/**", "/foo/bar", "/foo/*", "/foo/**"]),
        ("/foo/bar/qux", ["/**", "/foo/bar/qux", "/foo/bar/*", "/foo/**", "/foo/bar/**"]),
    ],
)
def test_expand_examples(name: str, expected: list[str]) -> None:
    assert list(expand(name)) == expected


def test_meta_and_service_classification() -> None:
    assert is_meta("/meta/connect")
    assert is_meta("/meta")
    assert is_meta("/meta/**")
    assert not is_meta("/metadata")
    assert not is_meta("/foo/meta")
    assert is_service("/service/x")
    assert is_service("/service/**")
    assert not is_service("/services")


@pytest.mark.parametrize(
    ("channel", "subscribable"),
    [
        ("/foo", True),
        ("/**", True),
        ("/*", True),
        ("/foo/**", True),
        ("/meta/foo", False),
        ("/meta/**", False),
        ("/service/x", False),
        ("/service/**", False),
        ("foo", False),
        ("/foo/**/*", False),
    ],
)
def test_subscribable(channel: str, subscribable: bool) -> None:
    assert channels.is_subscribable(channel) is subscribable


def test_meta_channel_constants() -> None:
    assert {
        "/meta/handshake",
        "/meta/connect",
        "/meta/subscribe",
        "/meta/unsubscribe",
        "/meta/disconnect",
    } == channels.META_CHANNELS


def test_matches_examples() -> None:
    assert matches("/messages/*", "/messages/foo")
    assert not matches("/*", "/messages/foo")
    assert matches("/messages/**", "/messages/foo")
    assert matches("/**", "/messages/foo")
    assert not matches("/messages/bar", "/messages/foo")
    assert not matches("/messages/foo/**", "/messages/foo")


# -- properties ----------------------------------------------------------------------------


@given(names)
def test_generated_names_are_names(name: str) -> None:
    assert is_name(name)
    assert not is_pattern(name)
    assert channels.is_valid(name)


@given(segment_lists, st.integers(min_value=0, max_value=10), st.sampled_from(BAD_CHARS))
def test_a_bad_char_anywhere_rejects(segs: list[str], where: int, bad: str) -> None:
    name = "/" + "/".join(segs)
    pos = 1 + where % len(name)  # never before the leading slash
    broken = name[:pos] + bad + name[pos:]
    if bad == "/" and "//" not in broken and not broken.endswith("/"):
        return  # inserting a slash can yield another valid name
    assert not is_name(broken)
    assert not is_pattern(broken)


@given(segment_lists, st.integers(min_value=0, max_value=5))
def test_an_empty_segment_rejects(segs: list[str], where: int) -> None:
    segs = list(segs)
    segs.insert(where % (len(segs) + 1), "")
    channel = "/" + "/".join(segs)
    assert not is_name(channel)
    assert not is_pattern(channel)


@given(names)
def test_trailing_slash_and_newline_reject(name: str) -> None:
    assert not is_name(name + "/")
    assert not is_name(name + "\n")
    assert not is_pattern(name + "/*\n")
    assert not is_name(name[1:])  # relative


@given(st.lists(segments, min_size=0, max_size=4), st.sampled_from(["*", "**"]))
def test_wildcard_last_is_a_pattern(segs: list[str], wildcard: str) -> None:
    pattern = "/" + "/".join([*segs, wildcard])
    assert is_pattern(pattern)
    assert not is_name(pattern)
    assert channels.is_valid(pattern)


@given(
    st.lists(segments, min_size=0, max_size=3),
    st.sampled_from(["*", "**"]),
    st.lists(st.one_of(segments, st.sampled_from(["*", "**"])), min_size=1, max_size=3),
)
def test_wildcard_not_last_is_invalid(before: list[str], wildcard: str, after: list[str]) -> None:
    channel = "/" + "/".join([*before, wildcard, *after])
    assert not is_pattern(channel)
    assert not is_name(channel)


@given(names)
def test_expand_contains_exactly_the_matching_patterns(name: str) -> None:
    keys = expand(name)
    assert name in keys
    assert "/**" in keys
    assert len(keys) == len(set(keys))
    for key in keys:
        assert reference_matches(key, name), key
    wanted = {p for p in candidate_patterns(name) if reference_matches(p, name)}
    assert set(keys) == wanted


@given(
    st.one_of(
        names,
        st.lists(segments, min_size=0, max_size=4).map(lambda s: "/" + "/".join([*s, "*"])),
        st.lists(segments, min_size=0, max_size=4).map(lambda s: "/" + "/".join([*s, "**"])),
    ),
    names,
)
def test_matches_agrees_with_reference(pattern: str, name: str) -> None:
    assert matches(pattern, name) == reference_matches(pattern, name)


@given(names, st.sampled_from(["*", "**"]))
def test_matches_agrees_for_related_pairs(name: str, wildcard: str) -> None:
    """Random pairs rarely match; derive patterns from the name's own prefixes too."""
    segs = name.split("/")[1:]
    for i in range(len(segs) + 1):
        pattern = "/" + "/".join([*segs[:i], wildcard])
        assert matches(pattern, name) == reference_matches(pattern, name), pattern
