//! The property every per-format target checks: the validator never panics, hangs or allocates
//! without bound, and configuring the scan type never accepts what detection rejected (except
//! a ZAP report without a site, which a configured target makes uploadable).

use hostedscan_agent::validate::{validate, Hints, RejectKind, ScanType};

pub fn check(data: &[u8], scan_type: ScanType) {
    let auto = validate(data, &Hints::default()).unwrap();
    let hinted = Hints {
        scan_type: Some(scan_type),
        target: Some("https://fuzz.example".into()),
        accept_partial: false,
    };
    let configured = validate(data, &hinted).unwrap();
    if let (Ok(_), Err(rejection)) = (&configured, &auto) {
        assert_eq!(rejection.kind, RejectKind::NoTarget, "configured {scan_type:?} accepted what detection rejected");
    }
}
