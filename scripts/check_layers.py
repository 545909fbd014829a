#!/usr/bin/env python3
"""The layering check (ctest runs it as `layering`).

Reads the order of the areas from CONTRIBUTING.md's map (the line that begins with
"Layers, bottom to top:") and fails when
  - a file includes an `xlhost/...` header of an area above its own,
  - a plugin includes anything of xlhost but the SDK,
  - two or more files include each other round a loop (a source and its header are one file),
  - a function in core/ or host/ is longer than 80 lines, or a source file longer than 400,
    unless ALLOWED below names it with its reason.
Usage: scripts/check_layers.py [ROOT]  (default: the repository holding this script)
"""
import pathlib
import re
import sys

MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400

# Each entry is a debt with its reason, not a licence: shorten the code, then drop the line.
ALLOWED = {
    # A tokenizer.json's sections are read in the order the format lists them; splitting the
    # function would scatter one format's reading across helpers that share all its state.
    "core/src/data/tokenizer_json.cpp:load_tokenizer_json",
    # One BPE merge loop (count pairs, pick, merge, update) whose state is shared by every part.
    "core/src/data/bpe_trainer.cpp:train_bpe",
}

SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".cc", ".c"}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](xlhost/[^>"]+)[>"]', re.M)


def layer_order(root):
    text = (root / "CONTRIBUTING.md").read_text()
    m = re.search(r"^Layers, bottom to top:(.*)$", text, re.M)
    if not m:
        sys.exit("check_layers: CONTRIBUTING.md has no line beginning 'Layers, bottom to top:'")
    return re.findall(r"`([\w-]+)`", m.group(1))


def area_of(path):
    """The area a repository file belongs to: core/<area>, host, sdk or plugins."""
    parts = path.parts
    if parts[0] == "core" and len(parts) > 3 and parts[1] == "include":
        return parts[4]  # core/include/xlhost/core/<area>/...
    if parts[0] == "core" and len(parts) > 2 and parts[1] == "src":
        return parts[2]
    return parts[0]


def included_area(include):
    parts = include.split("/")  # xlhost/core/<area>/x.hpp or xlhost/sdk/x.hpp
    return parts[2] if parts[1] == "core" else parts[1]


def module_of(path):
    """A source and its header are one file for loops: core/<area>/<name>, sdk/<name>, ..."""
    parts = list(path.with_suffix("").parts)
    if parts[:4] == ["core", "include", "xlhost", "core"]:
        return "/".join(["core"] + parts[4:])
    if parts[:2] == ["core", "src"]:
        return "/".join(["core"] + parts[2:])
    if parts[:4] == ["sdk", "include", "xlhost", "sdk"]:
        return "/".join(["sdk"] + parts[4:])
    if parts[:2] == ["sdk", "src"]:
        return "/".join(["sdk"] + parts[2:])
    return "/".join(parts)


def module_of_include(include):
    parts = include.rsplit(".", 1)[0].split("/")
    return "/".join(parts[1:])  # xlhost/core/a/b.hpp -> core/a/b


def strip_comments_and_strings(text):
    """The text with comments and string and character literals blanked, lines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            open_paren = text.find("(", i)
            delimiter = text[i + 2:open_paren]
            j = text.find(")" + delimiter + '"', open_paren)
            j = n if j < 0 else j + len(delimiter) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i = i + 1
    return "".join(out)


NOT_A_FUNCTION = re.compile(r"^(namespace|struct|class|enum|union|extern|using|typedef|static_assert)\b")


def long_functions(text):
    """(name, first line, lines) of each function defined at column 0 (namespace level, the
    project's format), from its first line to its closing brace."""
    lines = strip_comments_and_strings(text).split("\n")
    found, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line or line[0] in " \t#}" or NOT_A_FUNCTION.match(line):
            i += 1
            continue
        j = i
        while j < len(lines) and not re.search(r"[;{]", lines[j]):  # the statement up to its first ';' or '{'
            j += 1
        head = re.split(r"[;{]", "\n".join(lines[i:j + 1]), 1)[0]
        if j == len(lines) or "{" not in lines[j].split(";", 1)[0] or "(" not in head \
                or "=" in head.split("(", 1)[0]:
            i = j + 1
            continue
        depth, end = 0, j
        for end in range(j, len(lines)):  # to the matching closing brace
            for c in lines[end][lines[end].index("{") if end == j else 0:]:
                depth += {"{": 1, "}": -1}.get(c, 0)
                if depth == 0:
                    break
            if depth == 0:
                break
        name = re.findall(r"([\w:~]+)\s*\(", head)
        found.append((name[0] if name else "?", i + 1, end - i + 1))
        i = end + 1
    return found


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    order = layer_order(root)
    rank = {area: k for k, area in enumerate(order)}
    problems = []
    files = sorted(p.relative_to(root) for top in ("core", "host", "sdk", "plugins")
                   for p in (root / top).rglob("*") if p.suffix in SOURCE_SUFFIXES)
    graph = {}
    for rel in files:
        text = (root / rel).read_text(errors="replace")
        area = area_of(rel)
        if area not in rank and area != "plugins":
            problems.append(f"{rel}: area '{area}' is not in CONTRIBUTING.md's layer order {order}")
            continue
        module = module_of(rel)
        graph.setdefault(module, set())
        for m in INCLUDE.finditer(text):
            include = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            target = included_area(include)
            if area == "plugins":
                if target != "sdk":
                    problems.append(f"{rel}:{line}: a plugin includes {include}; plugins see only xlhost/sdk/")
            elif target not in rank:
                problems.append(f"{rel}:{line}: includes {include}, of an area missing from the layer order")
            elif rank[target] > rank[area]:
                problems.append(f"{rel}:{line}: {area} includes {include} of {target}, which is above it "
                                f"(order: {' < '.join(order)})")
            if module_of_include(include) != module:
                graph[module].add(module_of_include(include))
        if rel.parts[0] in ("core", "host"):
            for name, first, count in long_functions(text):
                if count > MAX_FUNCTION_LINES and f"{rel}:{name.split('::')[-1]}" not in ALLOWED \
                        and f"{rel}:{name}" not in ALLOWED:
                    problems.append(f"{rel}:{first}: function {name} has {count} lines (at most {MAX_FUNCTION_LINES})")
        if rel.suffix in (".cpp", ".hpp", ".h", ".cc") and str(rel) not in ALLOWED:
            count = text.count("\n")
            if count > MAX_FILE_LINES:
                problems.append(f"{rel}: {count} lines (at most {MAX_FILE_LINES})")
    for loop in include_loops(graph):
        problems.append("include loop: " + " -> ".join(loop + [loop[0]]))
    for p in problems:
        print(p)
    print(f"check_layers: {len(files)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


def include_loops(graph):
    """Strongly connected groups of two or more files (Tarjan), each as one loop's files."""
    index, low, stack, on_stack, loops, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return loops


if __name__ == "__main__":
    sys.exit(main())
