-- One complete SMTP session driven by OpenDKIM's miltertest against a milter that
-- should answer "continue" to every step (milter-test-client).
--
--     miltertest -D port=PORT -s miltertest_session.lua
--     miltertest -D socket=unix:/path/to.sock -s miltertest_session.lua
--
-- Connects to inet:PORT@127.0.0.1 (or to the given socket spec).  Exits 0 when every step was sent and answered
-- with SMFIR_CONTINUE; otherwise prints "FAIL: ..." and exits non-zero.  Every step
-- runs inside pcall: a bare Lua error would make miltertest exit 1 and print nothing.
-- Keep tests/it/peer_miltertest.rs in step with what this script sends.

local here = debug.getinfo(1, "S").source:match("^@?(.*/)") or "./"
local steps = dofile(here .. "miltertest_steps.lua")
local fail, step = steps.fail, steps.step

-- A step the milter may have negotiated away (SMFIP_NOxxx) would make
-- miltertest raise an error; such a step is reported as skipped, which the
-- Rust test then notices as a missing line in the milter's report.
local function guarded_step(conn, option, name, fn, ...)
    if mt.test_option(conn, option) then
        print("skipped (milter asked for no " .. name .. ")")
        return
    end
    step(conn, name, SMFIR_CONTINUE, fn, ...)
end

local function main()
    local spec = socket
    if spec == nil then
        if port == nil then
            fail("no milter: run with -D port=N or -D socket=SPEC")
        end
        spec = "inet:" .. port .. "@127.0.0.1"
    end
    mt.set_timeout(10)
    local conn = mt.connect(spec, 50, 0.1)
    if conn == nil then
        fail("cannot connect to " .. spec)
    end

    -- Protocol version 6, offering two actions (add and change headers) and only
    -- the SKIP step flag, so the milter's report of the offer is known exactly.
    -- Beware: miltertest takes the protocol (step) flags as the THIRD argument and
    -- the actions as the fourth, the reverse of what miltertest(8) says (checked
    -- on the wire and in miltertest.c's mt_negotiate).
    step(conn, "negotiate", nil, mt.negotiate, 6, SMFIP_SKIP, SMFIF_ADDHDRS | SMFIF_CHGHDRS)

    step(conn, "macro connect", nil, mt.macro, SMFIC_CONNECT,
        "j", "mx.test", "{daemon_name}", "test-mta")
    guarded_step(conn, SMFIP_NOCONNECT, "conninfo", mt.conninfo, "client.test", "127.0.0.1")
    step(conn, "macro helo", nil, mt.macro, SMFIC_HELO, "{tls_version}", "TLSv1.3")
    guarded_step(conn, SMFIP_NOHELO, "helo", mt.helo, "client.example.org")

    step(conn, "macro mail", nil, mt.macro, SMFIC_MAIL,
        "i", "4XyZ1", "{mail_addr}", "sender@example.org")
    guarded_step(conn, SMFIP_NOMAIL, "mailfrom", mt.mailfrom, "<sender@example.org>", "SIZE=1024")

    step(conn, "macro rcpt", nil, mt.macro, SMFIC_RCPT, "{rcpt_addr}", "first@example.net")
    guarded_step(conn, SMFIP_NORCPT, "rcptto first", mt.rcptto, "<first@example.net>")
    step(conn, "macro rcpt", nil, mt.macro, SMFIC_RCPT, "{rcpt_addr}", "second@example.net")
    guarded_step(conn, SMFIP_NORCPT, "rcptto second", mt.rcptto, "<second@example.net>")
    guarded_step(conn, SMFIP_NODATA, "data", mt.data)

    guarded_step(conn, SMFIP_NOHDRS, "header From", mt.header, "From", "Sender <sender@example.org>")
    guarded_step(conn, SMFIP_NOHDRS, "header Subject", mt.header, "Subject", "miltertest session")
    -- A folded header: the continuation line starts with a tab, and the line break
    -- is a bare LF, as Postfix and Sendmail send it to milters.
    guarded_step(conn, SMFIP_NOHDRS, "header X-Folded", mt.header, "X-Folded",
        "first line\n\tsecond line")
    guarded_step(conn, SMFIP_NOEOH, "eoh", mt.eoh)
    guarded_step(conn, SMFIP_NOBODY, "body", mt.bodystring,
        "Hello from miltertest.\r\nSecond line.\r\n")

    step(conn, "eom", SMFIR_CONTINUE, mt.eom)
    step(conn, "disconnect", nil, mt.disconnect, true)
    print("done")
end

steps.run(main)
