-- What the miltertest scripts here share. A script loads it from its own directory:
--
--     local here = debug.getinfo(1, "S").source:match("^@?(.*/)") or "./"
--     local steps = dofile(here .. "miltertest_steps.lua")

local steps = {}

function steps.fail(message)
    print("FAIL: " .. message)
    os.exit(2)
end

function steps.reply_name(reply)
    if reply == nil then
        return "nil"
    end
    -- mt.getreply returns a float in Lua 5.3
    return string.format("%q", string.char(math.floor(reply)))
end

-- Runs one miltertest call, which must succeed (return nil); when `wanted` is a reply
-- code, the milter's reply must be that one. Prints "ok: NAME".
function steps.step(conn, name, wanted, fn, ...)
    local ok, result = pcall(fn, conn, ...)
    if not ok then
        steps.fail(name .. " raised: " .. tostring(result))
    end
    if result ~= nil then
        steps.fail(name .. " returned: " .. tostring(result))
    end
    if wanted ~= nil then
        local reply = mt.getreply(conn)
        if reply ~= wanted then
            steps.fail(name .. ": expected " .. steps.reply_name(wanted) .. ", got "
                .. steps.reply_name(reply))
        end
    end
    print("ok: " .. name)
end

-- Runs the script's `main` and exits 0 after it; a bare Lua error would make miltertest
-- exit 1 and print nothing, so it is printed as a failure.
function steps.run(main)
    local ok, err = pcall(main)
    if not ok then
        steps.fail("error: " .. tostring(err))
    end
    os.exit(0)
end

return steps
