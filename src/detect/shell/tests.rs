use super::expand::glob;
use super::*;

fn run(text: &str) -> Shell {
    let mut shell = Shell::new();
    shell.run_all("/test", text);
    shell
}

#[test]
fn assignments_and_expansions() {
    let shell = run(concat!(
        "NAME=opendkim\n",
        "RUNDIR=/run/$NAME\n",
        "SOCKET=\"local:${RUNDIR}/$NAME.sock\" # a comment\n",
        "QUOTED='$NAME'\n",
        "export EXPORTED=yes\n",
        "TEMP=1 some_command $TEMP\n",
        "if [ -f /x ]; then INSIDE=\"a b\"; fi\n",
        "CONT=\"one \\\n two\"\n",
        "COMPUTED=`awk '{print $2}' /etc/x`\n",
        "POSITIONAL=$1\n",
    ));
    assert_eq!(shell.value("SOCKET"), Some(Ok("local:/run/opendkim/opendkim.sock")));
    assert_eq!(shell.value("QUOTED"), Some(Ok("$NAME")));
    assert_eq!(shell.value("EXPORTED"), Some(Ok("yes")));
    assert_eq!(shell.value("TEMP"), None);
    assert_eq!(shell.value("INSIDE"), Some(Ok("a b")));
    assert_eq!(shell.value("CONT"), Some(Ok("one  two")));
    assert_eq!(shell.value("COMPUTED"), Some(Err("is computed by a command")));
    assert_eq!(shell.value("POSITIONAL"), Some(Err("uses the script's parameter $1")));
    assert_eq!(shell.var("SOCKET").unwrap().origin, "/test");
}

#[test]
fn parameter_operators() {
    let shell = run(concat!(
        "EMPTY=\n",
        "a=${UNSET:-\"default value\"}\n",
        "b=${EMPTY-set}\n",
        "c=${EMPTY:-empty}\n",
        ": ${d=\"/var/run/d.sock\"}\n",
        ": ${a:=ignored}\n",
        "e=${a:+alt}\n",
        "path=local:/run/x/y.sock\n",
        "f=${path##local:}\n",
        "g=${path##*/}\n",
        "h=${path%/*}\n",
        "i=${#path}\n",
        "j=${k:-${d}}\n",
    ));
    assert_eq!(shell.value("a"), Some(Ok("default value")));
    assert_eq!(shell.value("b"), Some(Ok("")));
    assert_eq!(shell.value("c"), Some(Ok("empty")));
    assert_eq!(shell.value("d"), Some(Ok("/var/run/d.sock")));
    assert_eq!(shell.value("e"), Some(Ok("alt")));
    assert_eq!(shell.value("f"), Some(Ok("/run/x/y.sock")));
    assert_eq!(shell.value("g"), Some(Ok("y.sock")));
    assert_eq!(shell.value("h"), Some(Ok("local:/run/x")));
    assert_eq!(shell.value("i"), Some(Ok("19")));
    assert_eq!(shell.value("j"), Some(Ok("/var/run/d.sock")));
    let g = |pattern: &str, text: &str| {
        glob(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
    };
    assert!(g("*", "") && g("a*c", "abbc") && g("a?c", "abc") && g("*.sock", "x.sock"));
    assert!(!g("a*c", "abd") && !g("?", "") && !g("a", "ab"));
    assert!(!g(&"*a".repeat(30), &"a".repeat(29)));
}

#[test]
fn hook_sees_commands_and_filter_chooses_them() {
    let mut shell = Shell::new();
    let mut seen = Vec::new();
    let text = "X=1\n. /etc/default/$NAME\nfoo() {\n    Y=2\n}\nZ=3\n";
    shell.set("NAME", Ok("opendkim".into()));
    shell.run("/s", text, &|command| command.indent == 0, &mut |_, words| {
        seen.push(words.join(" "));
    });
    assert_eq!(seen, [". /etc/default/opendkim", "foo"]);
    assert_eq!(shell.value("Y"), None);
    assert_eq!(shell.value("Z"), Some(Ok("3")));
}

#[test]
fn options() {
    let words = split_words("-u spamass-milter -p '/var/run/a b.sock' -i 127.0.0.1 -- -d x");
    assert_eq!(words[3], "/var/run/a b.sock");
    assert_eq!(option_value(&words, &["-p"]).as_deref(), Some("/var/run/a b.sock"));
    assert_eq!(option_value(&words, &["-d"]), None);
    let words = split_words("-x/etc/o.conf --config-file=/etc/c.conf -p -g postfix");
    assert_eq!(option_value(&words, &["-x"]).as_deref(), Some("/etc/o.conf"));
    assert_eq!(option_value(&words, &["-c", "--config-file"]).as_deref(), Some("/etc/c.conf"));
    assert_eq!(option_value(&words, &["-p"]), None);
    assert!(is_yes("Yes") && is_yes("TRUE") && !is_yes("NO") && !is_yes(""));
}
