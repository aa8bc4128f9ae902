//! Why an address could not be assigned or kept. Every variant names the object at fault.

use std::net::IpAddr;

use ferrolb_config::addresses::Family;

use super::service::{Protocol, ServiceKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The requested pool does not exist (or is not usable).
    #[error("pool {pool:?} does not exist")]
    UnknownPool { pool: String },
    /// The pool's `serviceAllocation` does not admit the Service.
    #[error("pool {pool:?} does not allow Service {service}")]
    PoolNotAllowed { pool: String, service: ServiceKey },
    /// No pool that assigns automatically admits the Service.
    #[error("no pool with autoAssign allows Service {service}")]
    NoPoolForService { service: ServiceKey },
    /// No candidate pool has any address of the wanted families.
    #[error("no pool allowed for Service {service} has {families:?} addresses")]
    NoPoolWithFamily {
        service: ServiceKey,
        families: Vec<Family>,
    },
    /// RequireDualStack, but no candidate pool has both families, or only one address requested.
    #[error("Service {service} requires dual-stack: {reason}")]
    DualStackRequired { service: ServiceKey, reason: String },
    /// The one candidate pool has no free or shareable address of a wanted family.
    #[error("pool {pool:?} has no free {family} address")]
    PoolExhausted { pool: String, family: Family },
    /// Every candidate pool is exhausted.
    #[error("no free address for Service {service} in pools {pools:?}")]
    AllPoolsExhausted {
        service: ServiceKey,
        pools: Vec<String>,
    },
    #[error("requested IP {ip} is not in any pool")]
    RequestedIpNotInAnyPool { ip: IpAddr },
    #[error("requested IP {ip} is not in the requested pool {pool:?}")]
    RequestedIpNotInRequestedPool { ip: IpAddr, pool: String },
    #[error("requested IPs {ips:?} lie in different pools {pools:?}; both must come from one pool")]
    RequestedIpsInDifferentPools {
        ips: Vec<IpAddr>,
        pools: Vec<String>,
    },
    /// `avoidBuggyIPs` pools never hand out IPv4 `.0`/`.255`.
    #[error("requested IP {ip} ends in .0 or .255 and pool {pool:?} avoids buggy IPs")]
    RequestedIpAvoided { ip: IpAddr, pool: String },
    /// The address is not of a family the Service asks for (`ipFamilies`, `ipFamilyPolicy`).
    #[error("IP {ip} is not of the Service's families {wanted:?}")]
    WrongFamily { ip: IpAddr, wanted: Vec<Family> },
    /// SingleStack with two requested IPs.
    #[error("Service {service} is SingleStack but requests {count} IPs")]
    TooManyRequestedIps { service: ServiceKey, count: usize },
    /// A held address no longer matches the Service's requested IPs.
    #[error("IP {ip} is no longer requested")]
    IpNoLongerRequested { ip: IpAddr },
    /// A held address is not part of the assignment kept (another pool or a family held twice).
    #[error("IP {ip} does not fit the Service's assignment from pool {pool:?}")]
    IpNotNeeded { ip: IpAddr, pool: String },
    /// The address is no longer in any pool.
    #[error("IP {ip} is no longer in any pool")]
    IpLeftEveryPool { ip: IpAddr },
    /// Held by a Service without a sharing key, or the new Service has none.
    #[error("IP {ip} is in use by {by}")]
    RequestedIpInUse { ip: IpAddr, by: ServiceKey },
    #[error("IP {ip} is shared by {with} with key {theirs:?}, not {ours:?}")]
    SharingKeyMismatch {
        ip: IpAddr,
        with: ServiceKey,
        ours: String,
        theirs: String,
    },
    #[error("IP {ip}: {protocol}/{port} is already used by {with}")]
    PortClash {
        ip: IpAddr,
        with: ServiceKey,
        protocol: Protocol,
        port: u16,
    },
    /// With `externalTrafficPolicy: Local`, sharing Services must select the same pods.
    #[error(
        "IP {ip}: {with} differs in externalTrafficPolicy Local pod selector; sharing needs both Local with the same selector or both Cluster"
    )]
    PodSelectorMismatch { ip: IpAddr, with: ServiceKey },
    /// Pools handed to the allocator must be disjoint and uniquely named.
    #[error("pools {first:?} and {second:?} overlap in {range}")]
    OverlappingPools {
        first: String,
        second: String,
        /// The first shared range, as `ferrolb_config::addresses::AddressRange` displays it.
        range: String,
    },
    #[error("pool {pool:?} is given twice")]
    DuplicatePool { pool: String },
}
