-- Two messages in one session, driven by OpenDKIM's miltertest against milter-manager
-- in front of a milter that answers continue to everything and then
-- tests/peers/pymilter_modifier.py (see tests/it/peer_pipeline.rs).
--
--     miltertest -D socket=inet:PORT@127.0.0.1 -s miltertest_header_refusal.lua
--
-- The first message carries X-Reject-Me first among its headers: pymilter refuses it
-- there, with the other headers and end-of-header already sent behind it, so the MTA
-- must hear pymilter's 550 at end-of-message. The second message must then go through
-- pymilter as usual: its added header, its replaced body, and continue (pymilter runs in
-- its "continue" mode, so that it asks for CONNECT, which the manager sends again on the
-- new connection). Prints "done" and
-- exits 0 when all of that held; otherwise prints "FAIL: ..." and exits non-zero.

local here = debug.getinfo(1, "S").source:match("^@?(.*/)") or "./"
local steps = dofile(here .. "miltertest_steps.lua")
local fail, step = steps.fail, steps.step

local function envelope(conn, message)
    step(conn, message .. " mailfrom", SMFIR_CONTINUE, mt.mailfrom, "<sender@example.org>")
    step(conn, message .. " rcptto", SMFIR_CONTINUE, mt.rcptto, "<rcpt@example.net>")
    step(conn, message .. " data", SMFIR_CONTINUE, mt.data)
end

local function main()
    if socket == nil then
        fail("no manager: run with -D socket=SPEC")
    end
    mt.set_timeout(20)
    local conn = mt.connect(socket, 50, 0.1)
    if conn == nil then
        fail("cannot connect to " .. socket)
    end
    -- Every step may be left out (the children ask for some), none goes unanswered.
    local steps = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NODATA
        | SMFIP_NOHDRS | SMFIP_NOEOH | SMFIP_NOBODY | SMFIP_SKIP
    step(conn, "negotiate", nil, mt.negotiate, 6, steps, SMFIF_ADDHDRS | SMFIF_CHGBODY)
    step(conn, "conninfo", SMFIR_CONTINUE, mt.conninfo, "client.test", "127.0.0.1")
    step(conn, "helo", SMFIR_CONTINUE, mt.helo, "client.example.org")

    envelope(conn, "first")
    step(conn, "first header X-Reject-Me", SMFIR_CONTINUE, mt.header, "X-Reject-Me", "yes")
    step(conn, "first header Subject", SMFIR_CONTINUE, mt.header, "Subject", "one")
    step(conn, "first header From", SMFIR_CONTINUE, mt.header, "From", "sender@example.org")
    step(conn, "first eoh", SMFIR_CONTINUE, mt.eoh)
    step(conn, "first body", SMFIR_CONTINUE, mt.bodystring, "First.\r\n")
    step(conn, "first eom", SMFIR_REPLYCODE, mt.eom)
    step(conn, "first abort", nil, mt.abort)

    envelope(conn, "second")
    step(conn, "second header Subject", SMFIR_CONTINUE, mt.header, "Subject", "two")
    step(conn, "second eoh", SMFIR_CONTINUE, mt.eoh)
    step(conn, "second body", SMFIR_CONTINUE, mt.bodystring, "Second.\r\n")
    step(conn, "second eom", SMFIR_CONTINUE, mt.eom)
    if not mt.eom_check(conn, MT_HDRADD, "X-Pymilter", "seen") then
        fail("second eom: pymilter's X-Pymilter header is missing")
    end
    if not mt.eom_check(conn, MT_BODYCHANGE) then
        fail("second eom: pymilter's body is missing")
    end
    print("ok: second eom changes")
    step(conn, "disconnect", nil, mt.disconnect, true)
    print("done")
end

steps.run(main)
