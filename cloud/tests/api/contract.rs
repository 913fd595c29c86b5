//! The ticket contract on a real anvil, through alloy: deploy, mint, a
//! second mint reverts, only the minter mints, locking (EIP-5192), custodial
//! moves, unlock, royalties (EIP-2981), invalidation; and the checked-in
//! artifacts are what the source compiles to.

use crate::anvil::{Anvil, HOLDER_KEY, MINTER_KEY, send};
use alloy::primitives::{Address, FixedBytes, U256};
use alloy::sol_types::SolCall;
use cloud::chain::contract::{self, ContractTerms};

alloy::sol! {
    #[sol(rpc)]
    interface ITicket {
        function mint(address to, uint256 tokenId) external;
        function mintBatch(address[] to, uint256[] tokenIds) external;
        function ownerOf(uint256 tokenId) external view returns (address);
        function locked(uint256 tokenId) external view returns (bool);
        function royaltyInfo(uint256 tokenId, uint256 salePrice) external view returns (address, uint256);
        function tokenURI(uint256 tokenId) external view returns (string);
        function supportsInterface(bytes4 id) external view returns (bool);
        function transferFrom(address from, address to, uint256 tokenId) external;
        function custodianTransferBatch(address[] to, uint256[] tokenIds) external;
        function invalidateBatch(uint256[] tokenIds) external;
        function unlock(uint256[] tokenIds) external;
        function withdraw(address to, uint256 tokenId) external;
    }
}

#[test]
fn checked_in_artifacts_match_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/build.sh");
    let out = std::process::Command::new(&script)
        .env("OUT", dir.path())
        .output()
        .expect("run contracts/build.sh");
    assert!(
        out.status.success(),
        "contracts/build.sh must compile the contract (run scripts/setup for solc): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["GatehouseTicket.abi.json", "GatehouseTicket.bin"] {
        let fresh = std::fs::read_to_string(dir.path().join(f)).unwrap();
        let checked_in = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("contracts/artifacts")
                .join(f),
        )
        .unwrap();
        assert!(
            fresh == checked_in,
            "{f} differs from what the source compiles to: run cloud/contracts/build.sh and commit"
        );
    }
    assert_eq!(
        contract::BYTECODE_HEX,
        std::fs::read_to_string(dir.path().join("GatehouseTicket.bin")).unwrap()
    );
}

fn terms(minter: Address, receiver: Address, locked_until: u64) -> ContractTerms {
    ContractTerms {
        name: "Harbour Lights".into(),
        symbol: "GHT".into(),
        metadata_base: "https://cloud.example/nft/".into(),
        admin: minter,
        minter,
        royalty_receiver: receiver,
        royalty_bps: 500,
        locked_until,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_mints_once_locks_moves_pays_royalties_and_burns() {
    let anvil = Anvil::start(&[]).await;
    let minter = anvil.client(MINTER_KEY);
    let holder = anvil.client(HOLDER_KEY);
    let receiver = Address::repeat_byte(0x42);
    let future = 4_000_000_000u64;
    let addr = minter.minter().create(0);
    let deployed = send(
        &minter,
        None,
        contract::deploy_code(&terms(minter.minter(), receiver, future)).unwrap(),
    )
    .await;
    assert!(deployed.success, "deploy succeeds");
    let c = ITicket::new(addr, minter.provider());
    let t1 = contract::token_id(cloud::model::new_ticket_id());
    let t2 = contract::token_id(cloud::model::new_ticket_id());
    let h = holder.minter();

    let mint = |to: Address, id: U256| ITicket::mintCall { to, tokenId: id }.abi_encode().into();
    assert!(
        send(&minter, Some(addr), mint(h, t1)).await.success,
        "the minter mints"
    );
    assert_eq!(c.ownerOf(t1).call().await.unwrap(), h);
    assert!(
        !send(&minter, Some(addr), mint(h, t1)).await.success,
        "a second mint of one ticket reverts"
    );
    assert!(
        !send(&holder, Some(addr), mint(h, t2)).await.success,
        "only the minter mints"
    );
    let batch = ITicket::mintBatchCall {
        to: vec![h, h],
        tokenIds: vec![t1, t2],
    }
    .abi_encode()
    .into();
    assert!(
        send(&minter, Some(addr), batch).await.success,
        "a batch skips the minted token"
    );
    assert_eq!(c.ownerOf(t2).call().await.unwrap(), h);

    assert!(
        c.locked(t1).call().await.unwrap(),
        "locked before the event ends"
    );
    assert!(
        c.supportsInterface(FixedBytes([0xb4, 0x5a, 0x3c, 0x0e]))
            .call()
            .await
            .unwrap(),
        "EIP-5192"
    );
    assert!(
        c.supportsInterface(FixedBytes([0x2a, 0x55, 0x20, 0x5a]))
            .call()
            .await
            .unwrap(),
        "EIP-2981"
    );
    let other = Address::repeat_byte(0x77);
    let holder_move = ITicket::transferFromCall {
        from: h,
        to: other,
        tokenId: t1,
    }
    .abi_encode()
    .into();
    assert!(
        !send(&holder, Some(addr), holder_move).await.success,
        "a holder cannot move a locked ticket"
    );
    let custodial = ITicket::custodianTransferBatchCall {
        to: vec![other],
        tokenIds: vec![t1],
    }
    .abi_encode()
    .into();
    assert!(
        send(&minter, Some(addr), custodial).await.success,
        "the platform moves it between its wallets"
    );
    assert_eq!(c.ownerOf(t1).call().await.unwrap(), other);

    let unlock = ITicket::unlockCall { tokenIds: vec![t2] }
        .abi_encode()
        .into();
    assert!(send(&minter, Some(addr), unlock).await.success);
    assert!(
        !c.locked(t2).call().await.unwrap(),
        "unlocked by the organizer"
    );
    let holder_move = ITicket::transferFromCall {
        from: h,
        to: other,
        tokenId: t2,
    }
    .abi_encode()
    .into();
    assert!(
        send(&holder, Some(addr), holder_move).await.success,
        "an unlocked ticket moves"
    );

    let r = c.royaltyInfo(t1, U256::from(10_000)).call().await.unwrap();
    assert_eq!(
        (r._0, r._1),
        (receiver, U256::from(500)),
        "5 % to the organizer"
    );
    let uri = c.tokenURI(t1).call().await.unwrap();
    assert_eq!(uri, format!("https://cloud.example/nft/{addr:#x}/{t1}"));

    let burn = ITicket::invalidateBatchCall { tokenIds: vec![t1] }
        .abi_encode()
        .into();
    assert!(send(&minter, Some(addr), burn).await.success);
    assert!(
        c.ownerOf(t1).call().await.is_err(),
        "an invalidated ticket has no owner"
    );
    let s = minter.status_of(addr, &[t1, t2]).await.unwrap();
    assert!(s[0].burned && s[0].owner.is_zero() && !s[1].burned && s[1].owner == other);
    assert!(
        !send(&minter, Some(addr), mint(h, t1)).await.success,
        "an invalidated ticket is never minted again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_unlock_when_the_event_ends() {
    let anvil = Anvil::start(&[]).await;
    let minter = anvil.client(MINTER_KEY);
    let holder = anvil.client(HOLDER_KEY);
    let addr = minter.minter().create(0);
    let ended = 1_000u64;
    assert!(
        send(
            &minter,
            None,
            contract::deploy_code(&terms(minter.minter(), minter.minter(), ended)).unwrap()
        )
        .await
        .success
    );
    let t = contract::token_id(cloud::model::new_ticket_id());
    let h = holder.minter();
    assert!(
        send(
            &minter,
            Some(addr),
            ITicket::mintCall { to: h, tokenId: t }.abi_encode().into()
        )
        .await
        .success
    );
    let c = ITicket::new(addr, minter.provider());
    assert!(
        !c.locked(t).call().await.unwrap(),
        "an ended event's tickets are not locked"
    );
    let mv = ITicket::transferFromCall {
        from: h,
        to: Address::repeat_byte(9),
        tokenId: t,
    }
    .abi_encode()
    .into();
    assert!(send(&holder, Some(addr), mv).await.success);
}
