//! Who holds the server's connection slots (operations doc, "Connection
//! limits and timeouts"): the per-address limit, and which connection to
//! close when every slot is taken while another connection waits.
//!
//! Pure bookkeeping, no I/O and no clock: the accept loop
//! (`http/serve.rs`) registers each connection, passes `now`, and closes
//! the connection this module names. Two rules free a slot for a waiter:
//!
//! - **Fair share**: an address holding at least two slots more than the
//!   waiter's own address gives up its longest-held connection at once (so
//!   one address that filled the slots makes room for every other one,
//!   without two addresses trading a slot back and forth).
//! - **Turns**: otherwise the longest-held connection of all is closed once
//!   it has held its slot for [`MIN_TURN`], so waiting clients of one
//!   address (or behind one proxy) are each served within a few turns.
//!
//! A closed connection finishes the request it is serving first. Each
//! operation is a hash-map or ordered-set step, except the fair-share
//! search, which looks at each address holding a slot and runs only when a
//! connection waits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a served connection keeps its slot, at least, before it is
/// turned over for a waiter of an address that holds as many slots.
pub const MIN_TURN: Duration = Duration::from_secs(2);

/// One registered connection's number.
pub type ConnId = u64;

/// The connections the server has accepted, served or waiting for a slot.
/// `H` is how to ask a connection to close (a notifier in the server).
#[derive(Debug)]
pub struct Registry<H> {
    per_address: usize,
    next_id: ConnId,
    next_turn: u64,
    conns: HashMap<ConnId, Conn<H>>,
    addresses: HashMap<IpAddr, Holder>,
    /// Served connections not asked to close yet, by the order in which
    /// they got their slot (the first is the longest-held).
    serving: BTreeMap<u64, ConnId>,
}

#[derive(Debug)]
struct Conn<H> {
    /// `None`: from a trusted proxy, not counted per address.
    addr: Option<IpAddr>,
    handle: H,
    /// When it got its slot, and its turn number; `None` while waiting.
    slot: Option<(u64, Instant)>,
}

#[derive(Debug, Default)]
struct Holder {
    /// Connections of this address, served or waiting.
    held: usize,
    /// Turn numbers of its served connections not asked to close yet.
    serving: BTreeSet<u64>,
}

/// What [`Registry::make_room`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Room<'a, H> {
    /// Ask this connection to close: its slot goes to a waiter.
    Close(&'a H),
    /// No connection may be closed yet; ask again at this instant.
    RetryAt(Instant),
    /// No served connection is left to close (all are closing already).
    None,
}

impl<H> Registry<H> {
    /// A registry allowing `per_address` connections per client address.
    pub fn new(per_address: usize) -> Self {
        Registry {
            per_address: per_address.max(1),
            next_id: 0,
            next_turn: 0,
            conns: HashMap::new(),
            addresses: HashMap::new(),
            serving: BTreeMap::new(),
        }
    }

    /// Register a connection from `addr` (`None` for a trusted proxy, not
    /// limited per address); `None` when that address already holds
    /// `per_address` connections.
    pub fn admit(&mut self, addr: Option<IpAddr>, handle: H) -> Option<ConnId> {
        if let Some(ip) = addr {
            let holder = self.addresses.entry(ip).or_default();
            if holder.held >= self.per_address {
                return None;
            }
            holder.held += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(id, Conn { addr, handle, slot: None });
        Some(id)
    }

    /// The connection got a slot at `now`.
    pub fn served(&mut self, id: ConnId, now: Instant) {
        let turn = self.next_turn;
        let Some(conn) = self.conns.get_mut(&id) else { return };
        if conn.slot.is_some() {
            return;
        }
        self.next_turn += 1;
        conn.slot = Some((turn, now));
        self.serving.insert(turn, id);
        if let Some(holder) = conn.addr.and_then(|ip| self.addresses.get_mut(&ip)) {
            holder.serving.insert(turn);
        }
    }

    /// The connection ended (or gave up waiting).
    pub fn release(&mut self, id: ConnId) {
        let Some(conn) = self.conns.remove(&id) else { return };
        if let Some((turn, _)) = conn.slot {
            self.serving.remove(&turn);
        }
        if let Some(ip) = conn.addr {
            if let Some(holder) = self.addresses.get_mut(&ip) {
                holder.held = holder.held.saturating_sub(1);
                if let Some((turn, _)) = conn.slot {
                    holder.serving.remove(&turn);
                }
                if holder.held == 0 {
                    self.addresses.remove(&ip);
                }
            }
        }
    }

    /// Connections registered (served or waiting).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Slots `addr` holds with connections not asked to close.
    fn serving_of(&self, addr: Option<IpAddr>) -> usize {
        addr.and_then(|ip| self.addresses.get(&ip)).map_or(0, |h| h.serving.len())
    }

    /// Every slot is taken and `waiter` waits: which served connection to
    /// close (see the module's two rules). The one named is no longer
    /// offered again.
    pub fn make_room(&mut self, waiter: ConnId, now: Instant) -> Room<'_, H> {
        let own = self.serving_of(self.conns.get(&waiter).and_then(|c| c.addr));
        let heaviest = self.addresses.values().map(|h| h.serving.len()).max().unwrap_or(0);
        let victim_turn = if heaviest >= own + 2 {
            self.addresses.values().find(|h| h.serving.len() == heaviest).and_then(|h| h.serving.first().copied())
        } else {
            match self.serving.first_key_value() {
                None => return Room::None,
                Some((&turn, id)) => {
                    let since = self.conns.get(id).and_then(|c| c.slot).map_or(now, |(_, since)| since);
                    let due = since + MIN_TURN;
                    if now < due {
                        return Room::RetryAt(due);
                    }
                    Some(turn)
                }
            }
        };
        let Some(turn) = victim_turn else { return Room::None };
        let Some(id) = self.serving.remove(&turn) else { return Room::None };
        let Some(conn) = self.conns.get(&id) else { return Room::None };
        if let Some(holder) = conn.addr.and_then(|ip| self.addresses.get_mut(&ip)) {
            holder.serving.remove(&turn);
        }
        Room::Close(&conn.handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn an_address_holds_at_most_its_limit_and_a_proxy_is_not_counted() {
        let mut r = Registry::new(2);
        let a = r.admit(ip("10.0.0.1"), "a1").expect("first");
        assert!(r.admit(ip("10.0.0.1"), "a2").is_some());
        assert_eq!(r.admit(ip("10.0.0.1"), "a3"), None, "the third from one address");
        assert!(r.admit(ip("10.0.0.2"), "b1").is_some(), "another address");
        for n in 0..5 {
            assert!(r.admit(None, "proxied").is_some(), "proxy connection {n}");
        }
        r.release(a);
        assert!(r.admit(ip("10.0.0.1"), "a4").is_some(), "room again once one ended");
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn the_heaviest_address_makes_room_for_another_at_once() {
        let t0 = Instant::now();
        let mut r = Registry::new(100);
        for n in 0..4 {
            let id = r.admit(ip("10.0.0.1"), format!("greedy{n}")).expect("admitted");
            r.served(id, t0);
        }
        let other = r.admit(ip("10.0.0.1"), "greedy-waiter".to_owned()).expect("admitted");
        let newcomer = r.admit(ip("10.0.0.9"), "newcomer".to_owned()).expect("admitted");
        assert_eq!(r.make_room(newcomer, t0), Room::Close(&"greedy0".to_owned()), "oldest of the heaviest");
        assert_eq!(r.make_room(newcomer, t0), Room::Close(&"greedy1".to_owned()), "not the same one twice");
        // A waiter of the heaviest address itself waits for a turn.
        assert_eq!(r.make_room(other, t0), Room::RetryAt(t0 + MIN_TURN));
        assert_eq!(r.make_room(other, t0 + MIN_TURN), Room::Close(&"greedy2".to_owned()));
    }

    #[test]
    fn two_addresses_do_not_trade_a_slot_back_and_forth() {
        let t0 = Instant::now();
        let mut r = Registry::new(100);
        let a = r.admit(ip("10.0.0.1"), "a").expect("admitted");
        r.served(a, t0);
        let b = r.admit(ip("10.0.0.2"), "b").expect("admitted");
        r.served(b, t0);
        let waiter = r.admit(ip("10.0.0.2"), "b-waiter").expect("admitted");
        assert_eq!(r.make_room(waiter, t0), Room::RetryAt(t0 + MIN_TURN), "one slot each: fair already");
        assert_eq!(r.make_room(waiter, t0 + MIN_TURN), Room::Close(&"a"), "the longest-held, once its turn is up");
        r.release(a);
        r.served(waiter, t0 + MIN_TURN);
        assert_eq!(r.make_room(waiter, t0 + MIN_TURN), Room::Close(&"b"), "then b, held as long");
    }

    #[test]
    fn nothing_to_close_when_all_are_closing() {
        let t0 = Instant::now();
        let mut r = Registry::new(10);
        let a = r.admit(ip("10.0.0.1"), "a").expect("admitted");
        r.served(a, t0);
        let w = r.admit(ip("10.0.0.2"), "w").expect("admitted");
        assert_eq!(r.make_room(w, t0 + MIN_TURN), Room::Close(&"a"));
        assert_eq!(r.make_room(w, t0 + MIN_TURN), Room::None);
        r.release(a);
        r.release(w);
        assert!(r.is_empty());
    }
}
