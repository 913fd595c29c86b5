// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/// EIP-5192: minimal soulbound (lockable) NFTs.
interface IERC5192 {
    /// Emitted when the locking status is changed to locked.
    event Locked(uint256 tokenId);
    /// Emitted when the locking status is changed to unlocked.
    event Unlocked(uint256 tokenId);
    /// Whether `tokenId` cannot be transferred by its holder.
    function locked(uint256 tokenId) external view returns (bool);
}

/// One Gatehouse event's tickets. One token per ticket: the token id is the
/// ticket's UUID read as a 128-bit integer, so a second mint of the same
/// ticket reverts (`mint`) or is skipped (`mintBatch`). Only the platform's
/// minter mints, moves tokens between the custodial wallets it manages,
/// withdraws a token to its holder's own address, and invalidates
/// (burns) refunded tickets; an invalidated id can never be minted again.
/// Holders cannot transfer a token while it is locked: until the organizer
/// unlocks the event or the event ends (`lockedUntil`).
contract GatehouseTicket is ERC721, ERC2981, AccessControl, IERC5192 {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// Event end, unix seconds: tokens are locked before it unless unlocked.
    uint64 public immutable lockedUntil;
    /// Set by `unlock`: holders may transfer before the event ends.
    bool public unlocked;
    /// Refunded tickets: burned and never mintable again.
    mapping(uint256 => bool) public invalidated;
    /// Withdrawn to the holder's own address: the platform no longer moves it.
    mapping(uint256 => bool) public released;

    string private _metadataBase;

    error TicketLocked(uint256 tokenId);
    error TicketInvalidated(uint256 tokenId);
    error TicketReleased(uint256 tokenId);
    error LengthMismatch();

    constructor(
        string memory name_,
        string memory symbol_,
        string memory metadataBase_,
        address admin,
        address minter,
        address royaltyReceiver,
        uint96 royaltyBps,
        uint64 lockedUntil_
    ) ERC721(name_, symbol_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
        _metadataBase = metadataBase_;
        lockedUntil = lockedUntil_;
        if (royaltyBps > 0) {
            _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        }
    }

    /// Mints one ticket; reverts if it exists or was invalidated.
    function mint(address to, uint256 tokenId) external onlyRole(MINTER_ROLE) {
        if (invalidated[tokenId]) revert TicketInvalidated(tokenId);
        _mint(to, tokenId);
        if (locked(tokenId)) emit Locked(tokenId);
    }

    /// Mints many tickets in one transaction, skipping those that exist or
    /// were invalidated, so one stale entry never sinks the whole batch.
    function mintBatch(address[] calldata to, uint256[] calldata tokenIds) external onlyRole(MINTER_ROLE) {
        if (to.length != tokenIds.length) revert LengthMismatch();
        bool lockedNow = _lockedNow();
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (invalidated[id] || _ownerOf(id) != address(0)) continue;
            _mint(to[i], id);
            if (lockedNow) emit Locked(id);
        }
    }

    /// Moves tokens between wallets the platform manages (cloud transfers
    /// and resales), locked or not; skips burned ones, refuses released ones.
    function custodianTransferBatch(address[] calldata to, uint256[] calldata tokenIds)
        external
        onlyRole(MINTER_ROLE)
    {
        if (to.length != tokenIds.length) revert LengthMismatch();
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            if (released[id]) revert TicketReleased(id);
            if (_ownerOf(id) == address(0)) continue;
            _update(to[i], id, address(0));
        }
    }

    /// Hands a token to its holder's own address; the platform stops moving it.
    function withdraw(address to, uint256 tokenId) external onlyRole(MINTER_ROLE) {
        if (released[tokenId]) revert TicketReleased(tokenId);
        released[tokenId] = true;
        _update(to, tokenId, address(0));
    }

    /// Burns refunded tickets (those not minted yet can never be minted).
    function invalidateBatch(uint256[] calldata tokenIds) external onlyRole(MINTER_ROLE) {
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            uint256 id = tokenIds[i];
            invalidated[id] = true;
            if (_ownerOf(id) != address(0)) _update(address(0), id, address(0));
        }
    }

    /// The organizer allows holder transfers before the event ends.
    function unlock(uint256[] calldata tokenIds) external onlyRole(MINTER_ROLE) {
        unlocked = true;
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            if (_ownerOf(tokenIds[i]) != address(0)) emit Unlocked(tokenIds[i]);
        }
    }

    /// Owner (zero for none), invalidated and released of many tokens at
    /// once: what the minter reconciles against before a new mint.
    function statusOf(uint256[] calldata tokenIds)
        external
        view
        returns (address[] memory owners, bool[] memory burned, bool[] memory withdrawn)
    {
        owners = new address[](tokenIds.length);
        burned = new bool[](tokenIds.length);
        withdrawn = new bool[](tokenIds.length);
        for (uint256 i = 0; i < tokenIds.length; ++i) {
            owners[i] = _ownerOf(tokenIds[i]);
            burned[i] = invalidated[tokenIds[i]];
            withdrawn[i] = released[tokenIds[i]];
        }
    }

    /// EIP-5192.
    function locked(uint256 tokenId) public view returns (bool) {
        _requireOwned(tokenId);
        return _lockedNow();
    }

    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return string.concat(
            _metadataBase, Strings.toHexString(address(this)), "/", Strings.toString(tokenId)
        );
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, ERC2981, AccessControl)
        returns (bool)
    {
        return interfaceId == type(IERC5192).interfaceId || super.supportsInterface(interfaceId);
    }

    function _lockedNow() internal view returns (bool) {
        return !unlocked && block.timestamp < lockedUntil;
    }

    /// Holder transfers (an `auth` is given) wait for the lock to open;
    /// the minter's own moves pass `auth = 0`.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address) {
        address from = _ownerOf(tokenId);
        if (auth != address(0) && from != address(0) && to != address(0) && _lockedNow()) {
            revert TicketLocked(tokenId);
        }
        return super._update(to, tokenId, auth);
    }
}
