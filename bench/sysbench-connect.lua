-- sysbench 1.0 script: one new connection per transaction (connect, a point select on sbtest1,
-- disconnect), the cost an app without a pool pays for each login through a proxy.
-- Used by bench/dbbench.sh mysql; the sbtest tables come from oltp_read_only's prepare.

function thread_init()
  drv = sysbench.sql.driver()
end

function event()
  local con = drv:connect()
  con:query("SELECT c FROM sbtest1 WHERE id = " .. sysbench.rand.default(1, 100000))
  con:disconnect()
end
