//! The certificates in SCM that importing a TLS Secret needs: an earlier import found by name (list), a
//! certificate's expiry (show), an import, and a delete.

use super::auth::Credentials;
use super::client::{Call, LIST_PAGE_SIZE, ScmClient, check_certificate_id};
use super::outcome::{PushFailure, PushOutcome, answer, blames_endpoint, classify_as, rejected};
use super::wire::{CertificateSummary, ImportRequest, ImportResponse, ListResponse, ShowResponse, scm_time};

/// Most list pages [`ScmClient::find_import`] reads (5,000 certificates) before it gives up rather than page on.
pub const MAX_LIST_PAGES: u64 = 100;

/// An earlier import found by name, with what the list says about its certificate, so the caller can check it is
/// the same certificate before reusing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImport {
    /// Its SCM certificate ID (checked).
    pub id: String,
    /// The list entry's `expire_time`, when present and readable.
    pub expire_time: Option<jiff::Timestamp>,
    /// The list entry's `domain`, when present and not empty.
    pub domain: Option<String>,
}

impl FoundImport {
    fn from_summary(summary: &CertificateSummary) -> Result<Self, PushFailure> {
        Ok(Self {
            id: checked_id(summary.id.clone())?,
            expire_time: summary.expire_time.as_ref().and_then(scm_time),
            domain: summary.domain.clone().filter(|d| !d.is_empty()),
        })
    }
}

/// The offset of the list page after the one at `offset` that held `listed` of `total_count` certificates, or
/// `None` when that was the last: past the total, or an empty page (an answer that contradicts its own total must
/// not keep the caller paging).
fn next_offset(offset: u64, listed: usize, total_count: u64) -> Option<u64> {
    let next = offset + LIST_PAGE_SIZE;
    (listed > 0 && next < total_count).then_some(next)
}

/// An ID SCM answered with, checked before it is stored or put into a URL.
fn checked_id(id: String) -> Result<String, PushFailure> {
    check_certificate_id(&id).map_err(|message| rejected(format!("SCM answered {message}")))?;
    Ok(id)
}

impl ScmClient {
    /// The uploaded certificate SCM holds under exactly `name`, if any (an earlier import whose status was lost).
    /// `content` narrows the list only where SCM knows it (it is missing from Huawei's SDK models), so the pages
    /// are read newest first until the name turns up or the list ends, at most [`MAX_LIST_PAGES`] of them.
    pub async fn find_import(&self, credentials: &Credentials, name: &str) -> Result<Option<FoundImport>, PushFailure> {
        let mut offset = 0;
        for _ in 0..MAX_LIST_PAGES {
            let call = Call::List { keyword: name, offset };
            let page: ListResponse = answer(self.call(credentials, call).await, 200, "list")?;
            if let Some(found) = page.certificates.iter().find(|c| c.name == name) {
                return FoundImport::from_summary(found).map(Some);
            }
            match next_offset(offset, page.certificates.len(), page.total_count) {
                Some(next) => offset = next,
                None => return Ok(None),
            }
        }
        // Importing anyway could duplicate an import; a human has to thin out SCM's uploaded certificates first.
        Err(rejected(format!(
            "SCM holds more than {} uploaded certificates and {name} is not among the newest of them; delete \
             unused uploaded certificates in SCM so that an earlier import of this certificate can be found",
            MAX_LIST_PAGES * LIST_PAGE_SIZE
        )))
    }

    /// When the certificate `certificate_id` expires, from SCM's `not_after` (ShowCertificate); `None` when SCM does
    /// not say or says it in a form not understood.
    pub async fn expiry(
        &self,
        credentials: &Credentials,
        certificate_id: &str,
    ) -> Result<Option<jiff::Timestamp>, PushFailure> {
        check_certificate_id(certificate_id).map_err(rejected)?;
        let shown: ShowResponse = answer(self.call(credentials, Call::Show { certificate_id }).await, 200, "show")?;
        // `not_after` is documented as empty when unknown; the list's `expire_time` is read should it come instead.
        let given: Vec<&serde_json::Value> = [&shown.not_after, &shown.expire_time]
            .into_iter()
            .flatten()
            .filter(|v| v.as_str().is_none_or(|s| !s.trim().is_empty()))
            .collect();
        let expiry = given.iter().find_map(|v| scm_time(v));
        if let (None, Some(raw)) = (expiry, given.first()) {
            tracing::warn!(certificate_id, not_after = %raw, "SCM gave the certificate's expiry in a form not understood");
        }
        Ok(expiry)
    }

    /// Imports a certificate with its key and returns the new ID. The body holds the private key: it is sent and
    /// dropped, never logged.
    pub async fn import(&self, credentials: &Credentials, request: &ImportRequest) -> Result<String, PushFailure> {
        let created: ImportResponse = answer(self.call(credentials, Call::Import(request)).await, 200, "import")?;
        checked_id(created.certificate_id)
    }

    /// Deletes a certificate; SCM's 404 counts as done, since gone is what was wanted, but the gateway's 404
    /// (`APIGW.0101`: a wrong endpoint path) says nothing about the certificate.
    pub async fn delete(&self, credentials: &Credentials, certificate_id: &str) -> Result<(), PushFailure> {
        match classify_as(&self.call(credentials, Call::Delete { certificate_id }).await, 204) {
            PushOutcome::Failed(f)
                if f.http_status != Some(404) || blames_endpoint(f.http_status, f.error_code.as_deref()) =>
            {
                Err(f)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_stops_at_the_total_and_at_an_empty_page() {
        assert_eq!(next_offset(0, 50, 120), Some(50));
        assert_eq!(next_offset(50, 50, 120), Some(100));
        assert_eq!(next_offset(100, 20, 120), None);
        assert_eq!(next_offset(0, 50, 50), None);
        assert_eq!(next_offset(0, 3, 3), None);
        assert_eq!(next_offset(0, 0, 0), None);
        // A total the pages never deliver ends at the first empty page.
        assert_eq!(next_offset(50, 0, 10_000), None);
        // A page shorter than asked for (certificates deleted meanwhile) does not end the search early.
        assert_eq!(next_offset(0, 40, 120), Some(50));
    }
}
