//! The admin's known_hosts file read as text: the name OpenSSH files a
//! host under, the host-key algorithms to ask for, `@revoked` keys, and
//! the markers libssh2 cannot honour. Pure; libssh2 does the key matching
//! itself (src/operator/upstream.rs).
#![forbid(unsafe_code)]

use base64::Engine;

/// The known_hosts name OpenSSH uses: `addr` for port 22, `[addr]:port`
/// otherwise, so `ssh-keyscan -p PORT ADDR` output can be appended as is.
pub fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// libssh2 host-key algorithms for the key types known_hosts lists under
/// `name` (plain, unhashed entries; `None` when there are none, and then
/// libssh2's default order applies).
pub fn host_key_prefs(known_hosts: &str, name: &str) -> Option<String> {
    let mut prefs: Vec<&str> = Vec::new();
    for line in known_hosts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(names), Some(kind)) = (fields.next(), fields.next()) else {
            continue;
        };
        if names.starts_with('#') || names.starts_with('@') {
            continue;
        }
        if !names.split(',').any(|n| n == name) {
            continue;
        }
        let algs: &[&str] = match kind {
            "ssh-ed25519" => &["ssh-ed25519"],
            "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
                std::slice::from_ref(&kind)
            }
            // The key is RSA; the signature algorithm is negotiated.
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256"],
            _ => &[],
        };
        for a in algs {
            if !prefs.contains(a) {
                prefs.push(a);
            }
        }
    }
    (!prefs.is_empty()).then(|| prefs.join(","))
}

/// Whether `key` (the raw host key blob) is on an `@revoked` line.
pub fn is_revoked(known_hosts: &str, key: &[u8]) -> bool {
    known_hosts.lines().any(|line| {
        let mut f = line.split_whitespace();
        // `@revoked NAMES TYPE BASE64`
        f.next() == Some("@revoked")
            && f.nth(2)
                .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
                .is_some_and(|blob| blob == key)
    })
}

/// known_hosts lines Gatehouse cannot honour, for `gatehouse check`: a
/// marker other than `@revoked` (`@cert-authority`: libssh2 has no
/// certificate support, so such a line trusts nothing). `(line number,
/// marker)`.
pub fn unsupported_markers(known_hosts: &str) -> Vec<(usize, String)> {
    known_hosts
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let first = l.split_whitespace().next()?;
            (first.starts_with('@') && first != "@revoked").then(|| (i + 1, first.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_prefs_follow_known_hosts() {
        let kh = "\
# comment
[10.0.0.1]:2222 ssh-rsa AAAA
[10.0.0.1]:2222,web01 ecdsa-sha2-nistp256 AAAA
10.0.0.1 ssh-ed25519 AAAA
|1|salt=|hash= ssh-ed25519 AAAA
@cert-authority * ssh-ed25519 AAAA
";
        assert_eq!(
            host_key_prefs(kh, "[10.0.0.1]:2222").as_deref(),
            Some("rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256")
        );
        assert_eq!(
            host_key_prefs(kh, "10.0.0.1").as_deref(),
            Some("ssh-ed25519")
        );
        assert_eq!(host_key_prefs(kh, "10.0.0.2"), None);
        assert_eq!(host_key_prefs("", "x"), None);
    }

    #[test]
    fn revoked_keys_and_unsupported_markers() {
        let kh = "@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\n\
                  @cert-authority *.example ssh-ed25519 AAAA\n\
                  web01 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIQ==\n";
        let revoked = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIA==")
            .unwrap();
        let ok = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIQ==")
            .unwrap();
        assert!(is_revoked(kh, &revoked));
        assert!(!is_revoked(kh, &ok));
        assert_eq!(
            unsupported_markers(kh),
            vec![(2, "@cert-authority".to_string())]
        );
        // The marker's own key never becomes a preference or a trust.
        assert_eq!(host_key_prefs(kh, "*"), None);
    }

    #[test]
    fn known_hosts_names_as_openssh() {
        assert_eq!(known_hosts_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(known_hosts_name("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }
}
