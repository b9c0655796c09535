//! Subcommands for admins who run the binary by hand. The login path never
//! reaches this module.
#![forbid(unsafe_code)]

use crate::config::Config;
use crate::invocation::Admin;
use crate::login;

pub const HELP: &str = "\
gatehouse — an auditing jump-host login shell

As an operator's login shell (or sshd ForceCommand) it shows the hosts the
operator may use, relays the session, and writes every command to
<log_dir>/<user>.jsonl. It never runs anything on this machine.

Usage (admins):
  gatehouse check [--config PATH]   validate the config; exit 0 when valid
  gatehouse --help | --version

Login invocations (set by sshd, never typed):
  -gatehouse                 login shell: the host menu
  gatehouse -c REQUEST       REQUEST is a host name (or refused)
  gatehouse                  ForceCommand: the request is $SSH_ORIGINAL_COMMAND

Config: /etc/gatehouse/config.toml when installed setuid; otherwise
$GATEHOUSE_CONFIG, then ~/.config/gatehouse/config.toml, then the system path.
";

pub fn run(cmd: Admin) -> i32 {
    match cmd {
        Admin::Help => {
            print!("{HELP}");
            0
        }
        Admin::Version => {
            println!("gatehouse {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Admin::Check { config } => {
            let privileged = login::privileged();
            let path = match config {
                // An operator with a setuid binary must not make us read
                // files as the gatehouse account.
                Some(_) if privileged => {
                    eprintln!("gatehouse: --config is not allowed when running with privileges");
                    return 1;
                }
                Some(p) => p,
                None => login::config_path(privileged),
            };
            match Config::load(&path) {
                Ok(c) => {
                    println!(
                        "{}: OK ({} hosts, {} access rules; logs in {})",
                        path.display(),
                        c.hosts.len(),
                        c.access.len(),
                        c.settings.log_dir.display()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
        Admin::Tool { name, .. } => {
            eprintln!("gatehouse: `{name}` is not available in this build yet");
            1
        }
    }
}
