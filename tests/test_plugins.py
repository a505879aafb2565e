"""Plugins through entry points: a package installed next to mixchat adds a backend and a tool
that the CLI, the web app and the agent find with no change in mixchat."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mixchat import backends, plugins
from mixchat.config import load_settings
from mixchat.tools import registered_tools

PLUGIN = textwrap.dedent('''
    """mixchat-foo: a third-party backend and tool, as a package on PyPI would ship them."""
    from mixchat import Backend, TextDelta, Tool


    class FooBackend(Backend):
        name = "foo"
        default_model = "foo-1"

        async def generate(self, request):
            yield TextDelta("foo says: " + request.messages[-1]["content"])


    def shout_tool() -> Tool:
        return Tool("Shout", "Repeats the text in capitals.", lambda text: text.upper())
''')

ENTRY_POINTS = textwrap.dedent("""
    [mixchat.backends]
    foo = mixchat_foo:FooBackend
    broken = mixchat_foo:NoSuchClass

    [mixchat.tools]
    Shout = mixchat_foo:shout_tool
""")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory laid out as pip installs ``mixchat-foo``: its module and its dist-info."""
    (tmp_path / "mixchat_foo.py").write_text(PLUGIN)
    info = tmp_path / "mixchat_foo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mixchat-foo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return tmp_path


@pytest.fixture
def installed(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin on this process's path (and the entry points listed again)."""
    monkeypatch.syspath_prepend(str(site))
    plugins.reload()
    yield site
    plugins.reload()
    sys.modules.pop("mixchat_foo", None)


def mixchat(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_an_installed_backend_works_in_the_cli(site: Path) -> None:
    result = mixchat(site, "ask", "--backend", "foo", "hello")
    assert (result.returncode, result.stdout) == (0, "foo says: hello\n"), result.stderr
    listed = mixchat(site, "models")
    assert "foo" in listed.stdout and "default: foo-1" in listed.stdout
    assert "echo" in listed.stdout  # the built-ins are plugins too, still there


def test_a_broken_plugin_is_one_line(site: Path) -> None:
    result = mixchat(site, "ask", "--backend", "broken", "hello")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the backend 'broken' (mixchat_foo:NoSuchClass) cannot be imported" in result.stderr


def test_the_builtins_are_entry_points_of_mixchat_itself() -> None:
    own = plugins.found(plugins.BACKENDS)
    assert {"echo", "llamacpp", "transformers", "mistral", "openai"} <= set(own)
    assert own["echo"].value == "mixchat.backends.echo:EchoBackend"
    assert [point.name for point in plugins.found(plugins.TOOLS).values()][:2] == [
        "Calculator",
        "Search",
    ]


async def test_an_installed_backend_and_tool_in_the_app_and_the_agent(installed: Path) -> None:
    from mixchat.ui.sidebar import SettingsPanel

    assert "foo" in backends.names()
    panel = SettingsPanel(load_settings(backend="foo"))
    # the app offers the catalog: here the one entry that --backend foo makes
    assert "foo" in dict(panel.picker.models)  # [value, label] each
    assert "Shout" in panel.param.tools.objects
    backend = backends.get_backend(panel.settings())
    reply = await backend.complete(backends.ChatRequest([{"role": "user", "content": "hi"}]))
    assert reply.text == "foo says: hi"
    shout = next(tool for tool in registered_tools() if tool.name == "Shout")
    assert await shout.run("quiet") == "QUIET"
    await backends.close_all()


async def test_the_contributing_guides_backend_example_streams() -> None:
    """The example in CONTRIBUTING.md is a working backend."""
    guide = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text()
    section = guide.split("## Add a backend", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "CONTRIBUTING.md", "exec"), namespace)
    backend_cls = namespace["FooBackend"]
    assert isinstance(backend_cls, type) and issubclass(backend_cls, backends.Backend)
    backend = backend_cls(load_settings(backend="echo"))
    reply = await backend.complete(backends.ChatRequest([{"role": "user", "content": "hi"}]))
    assert reply.text == "Hello world" and reply.done.ok
    assert (reply.done.prompt_tokens, reply.done.completion_tokens) == (3, 2)
