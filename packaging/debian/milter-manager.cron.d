# milter-manager-log-analyzer(1) charts milter-manager's statistics lines from the mail
# log every 5 minutes into /var/lib/milter-manager-log/public_html: serve that directory
# with a web server (e.g. Apache: Alias /milter-manager-log
# /var/lib/milter-manager-log/public_html). It runs as user milter-manager-log, a
# member of group adm, which may read the mail log.
*/5 * * * * milter-manager-log test -x /usr/bin/milter-manager-log-analyzer && /usr/bin/milter-manager-log-analyzer --log /var/log/mail.log* --output-directory /var/lib/milter-manager-log/public_html >/dev/null
