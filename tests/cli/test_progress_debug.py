
def test_dbg(env, cli_env, pty_magedl, tmp_path):
    env.set_faults(rate=2 << 20)
    code, lines, wrapped, raw = pty_magedl("get", "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz",
                                           "-o", str(tmp_path), env=cli_env(env), columns=80)
    print(repr(raw[:3000]))
    print(repr(raw[-1500:]))
    print("\n".join(map(repr, lines)))
    code, lines, wrapped, raw = pty_magedl("list", env=cli_env(env), columns=80)
    print("\n".join(lines))
    code, lines, wrapped, raw = pty_magedl("list", env=cli_env(env), columns=140)
    print("\n".join(lines))
    assert 0
