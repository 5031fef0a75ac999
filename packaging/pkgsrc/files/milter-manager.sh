#!@RCD_SCRIPTS_SHELL@
# shellcheck disable=SC1091,SC2034
# (rc.subr is the system's; it reads the variables set here.)
#
# PROVIDE: milter_manager
# REQUIRE: DAEMON
# BEFORE: mail
# KEYWORD: shutdown
#
# Add to /etc/rc.conf to run milter-manager:
#
# milter_manager=YES                 start it at boot (default: NO)
# milter_manager_flags=""            more arguments for milter-manager
# milter_manager_user=milter-manager the user it serves as
# milter_manager_group=milter-manager the group it serves as
# milter_manager_socket_group=mail   the group of its unix socket, one the MTA is
#                                    in (Postfix: postfix)
# milter_manager_connection_spec=""  the socket the MTA connects to; empty keeps
#                                    manager.connection_spec of the configuration
# milter_manager_config_dir=@PKG_SYSCONFDIR@
#                                    the directory of milter-manager.toml
# milter_manager_pidfile=@VARBASE@/run/milter-manager/milter-manager.pid
#
# SIGHUP (/etc/rc.d/milter_manager reload) reloads the configuration; newsyslog
# sends SIGUSR1 to make it open its log file again.

if [ -f /etc/rc.subr ]; then
	. /etc/rc.subr
fi

name=milter_manager
rcvar=$name

load_rc_config "$name"

: "${milter_manager:=NO}"
: "${milter_manager_flags:=}"
: "${milter_manager_user:=@MILTER_MANAGER_USER@}"
: "${milter_manager_group:=@MILTER_MANAGER_GROUP@}"
: "${milter_manager_socket_group:=mail}"
: "${milter_manager_connection_spec:=}"
: "${milter_manager_config_dir:=@PKG_SYSCONFDIR@}"
: "${milter_manager_pidfile:=@VARBASE@/run/milter-manager/milter-manager.pid}"

command="@PREFIX@/sbin/milter-manager"
pidfile="${milter_manager_pidfile}"
extra_commands="reload"
sig_reload="HUP"
start_precmd="milter_manager_prestart"

# rc.subr would run the command as ${name}_user through su; milter-manager binds
# its socket as root and then switches to the user itself, so keep the user in a
# name rc.subr does not read.
milter_manager_serve_user="${milter_manager_user}"
unset milter_manager_user

command_args="--config-dir ${milter_manager_config_dir} --daemon --pid-file ${pidfile} --user-name ${milter_manager_serve_user} --group-name ${milter_manager_group} --unix-socket-group ${milter_manager_socket_group}"
if [ -n "${milter_manager_connection_spec}" ]; then
	command_args="${command_args} --connection-spec ${milter_manager_connection_spec}"
fi

milter_manager_prestart()
{
	# The pid file is written as the user it serves as.
	mkdir -p "$(dirname "${pidfile}")"
	chown "${milter_manager_serve_user}:${milter_manager_group}" "$(dirname "${pidfile}")"
}

run_rc_command "$1"
