/*
 * fsw_protocol.c - link protocol v2: COBS, CRC-16/CCITT-FALSE, pack/unpack,
 * streaming parser. See docs/protocol.md.
 */
#include "fsw_protocol.h"

#include <string.h>

/* ------------------------------------------------------------------ CRC */

/* CRC-16/CCITT-FALSE (poly 0x1021, MSB first), four bytes per step ("slicing by 4").
 * crc16_tables[0][i] is the CRC register after shifting byte i through the polynomial eight
 * times (the classic one-lookup-per-byte table); crc16_tables[k][i] is the same for byte i
 * followed by k zero bytes. The CRC is linear over XOR, so four bytes fold into the register
 * with four independent lookups instead of a chain of four: about half the instructions of the
 * byte-wise loop, which still does the last 0-3 bytes. 2 KB of read-only data (flash on the
 * MCU). The bitwise loop the tables replace cost about 60 % of a whole GNC cycle, framing
 * included. */
static const uint16_t crc16_tables[4][256] = {
    {
        0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
        0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
        0x1231u, 0x0210u, 0x3273u, 0x2252u, 0x52B5u, 0x4294u, 0x72F7u, 0x62D6u,
        0x9339u, 0x8318u, 0xB37Bu, 0xA35Au, 0xD3BDu, 0xC39Cu, 0xF3FFu, 0xE3DEu,
        0x2462u, 0x3443u, 0x0420u, 0x1401u, 0x64E6u, 0x74C7u, 0x44A4u, 0x5485u,
        0xA56Au, 0xB54Bu, 0x8528u, 0x9509u, 0xE5EEu, 0xF5CFu, 0xC5ACu, 0xD58Du,
        0x3653u, 0x2672u, 0x1611u, 0x0630u, 0x76D7u, 0x66F6u, 0x5695u, 0x46B4u,
        0xB75Bu, 0xA77Au, 0x9719u, 0x8738u, 0xF7DFu, 0xE7FEu, 0xD79Du, 0xC7BCu,
        0x48C4u, 0x58E5u, 0x6886u, 0x78A7u, 0x0840u, 0x1861u, 0x2802u, 0x3823u,
        0xC9CCu, 0xD9EDu, 0xE98Eu, 0xF9AFu, 0x8948u, 0x9969u, 0xA90Au, 0xB92Bu,
        0x5AF5u, 0x4AD4u, 0x7AB7u, 0x6A96u, 0x1A71u, 0x0A50u, 0x3A33u, 0x2A12u,
        0xDBFDu, 0xCBDCu, 0xFBBFu, 0xEB9Eu, 0x9B79u, 0x8B58u, 0xBB3Bu, 0xAB1Au,
        0x6CA6u, 0x7C87u, 0x4CE4u, 0x5CC5u, 0x2C22u, 0x3C03u, 0x0C60u, 0x1C41u,
        0xEDAEu, 0xFD8Fu, 0xCDECu, 0xDDCDu, 0xAD2Au, 0xBD0Bu, 0x8D68u, 0x9D49u,
        0x7E97u, 0x6EB6u, 0x5ED5u, 0x4EF4u, 0x3E13u, 0x2E32u, 0x1E51u, 0x0E70u,
        0xFF9Fu, 0xEFBEu, 0xDFDDu, 0xCFFCu, 0xBF1Bu, 0xAF3Au, 0x9F59u, 0x8F78u,
        0x9188u, 0x81A9u, 0xB1CAu, 0xA1EBu, 0xD10Cu, 0xC12Du, 0xF14Eu, 0xE16Fu,
        0x1080u, 0x00A1u, 0x30C2u, 0x20E3u, 0x5004u, 0x4025u, 0x7046u, 0x6067u,
        0x83B9u, 0x9398u, 0xA3FBu, 0xB3DAu, 0xC33Du, 0xD31Cu, 0xE37Fu, 0xF35Eu,
        0x02B1u, 0x1290u, 0x22F3u, 0x32D2u, 0x4235u, 0x5214u, 0x6277u, 0x7256u,
        0xB5EAu, 0xA5CBu, 0x95A8u, 0x8589u, 0xF56Eu, 0xE54Fu, 0xD52Cu, 0xC50Du,
        0x34E2u, 0x24C3u, 0x14A0u, 0x0481u, 0x7466u, 0x6447u, 0x5424u, 0x4405u,
        0xA7DBu, 0xB7FAu, 0x8799u, 0x97B8u, 0xE75Fu, 0xF77Eu, 0xC71Du, 0xD73Cu,
        0x26D3u, 0x36F2u, 0x0691u, 0x16B0u, 0x6657u, 0x7676u, 0x4615u, 0x5634u,
        0xD94Cu, 0xC96Du, 0xF90Eu, 0xE92Fu, 0x99C8u, 0x89E9u, 0xB98Au, 0xA9ABu,
        0x5844u, 0x4865u, 0x7806u, 0x6827u, 0x18C0u, 0x08E1u, 0x3882u, 0x28A3u,
        0xCB7Du, 0xDB5Cu, 0xEB3Fu, 0xFB1Eu, 0x8BF9u, 0x9BD8u, 0xABBBu, 0xBB9Au,
        0x4A75u, 0x5A54u, 0x6A37u, 0x7A16u, 0x0AF1u, 0x1AD0u, 0x2AB3u, 0x3A92u,
        0xFD2Eu, 0xED0Fu, 0xDD6Cu, 0xCD4Du, 0xBDAAu, 0xAD8Bu, 0x9DE8u, 0x8DC9u,
        0x7C26u, 0x6C07u, 0x5C64u, 0x4C45u, 0x3CA2u, 0x2C83u, 0x1CE0u, 0x0CC1u,
        0xEF1Fu, 0xFF3Eu, 0xCF5Du, 0xDF7Cu, 0xAF9Bu, 0xBFBAu, 0x8FD9u, 0x9FF8u,
        0x6E17u, 0x7E36u, 0x4E55u, 0x5E74u, 0x2E93u, 0x3EB2u, 0x0ED1u, 0x1EF0u
    },
    {
        0x0000u, 0x3331u, 0x6662u, 0x5553u, 0xCCC4u, 0xFFF5u, 0xAAA6u, 0x9997u,
        0x89A9u, 0xBA98u, 0xEFCBu, 0xDCFAu, 0x456Du, 0x765Cu, 0x230Fu, 0x103Eu,
        0x0373u, 0x3042u, 0x6511u, 0x5620u, 0xCFB7u, 0xFC86u, 0xA9D5u, 0x9AE4u,
        0x8ADAu, 0xB9EBu, 0xECB8u, 0xDF89u, 0x461Eu, 0x752Fu, 0x207Cu, 0x134Du,
        0x06E6u, 0x35D7u, 0x6084u, 0x53B5u, 0xCA22u, 0xF913u, 0xAC40u, 0x9F71u,
        0x8F4Fu, 0xBC7Eu, 0xE92Du, 0xDA1Cu, 0x438Bu, 0x70BAu, 0x25E9u, 0x16D8u,
        0x0595u, 0x36A4u, 0x63F7u, 0x50C6u, 0xC951u, 0xFA60u, 0xAF33u, 0x9C02u,
        0x8C3Cu, 0xBF0Du, 0xEA5Eu, 0xD96Fu, 0x40F8u, 0x73C9u, 0x269Au, 0x15ABu,
        0x0DCCu, 0x3EFDu, 0x6BAEu, 0x589Fu, 0xC108u, 0xF239u, 0xA76Au, 0x945Bu,
        0x8465u, 0xB754u, 0xE207u, 0xD136u, 0x48A1u, 0x7B90u, 0x2EC3u, 0x1DF2u,
        0x0EBFu, 0x3D8Eu, 0x68DDu, 0x5BECu, 0xC27Bu, 0xF14Au, 0xA419u, 0x9728u,
        0x8716u, 0xB427u, 0xE174u, 0xD245u, 0x4BD2u, 0x78E3u, 0x2DB0u, 0x1E81u,
        0x0B2Au, 0x381Bu, 0x6D48u, 0x5E79u, 0xC7EEu, 0xF4DFu, 0xA18Cu, 0x92BDu,
        0x8283u, 0xB1B2u, 0xE4E1u, 0xD7D0u, 0x4E47u, 0x7D76u, 0x2825u, 0x1B14u,
        0x0859u, 0x3B68u, 0x6E3Bu, 0x5D0Au, 0xC49Du, 0xF7ACu, 0xA2FFu, 0x91CEu,
        0x81F0u, 0xB2C1u, 0xE792u, 0xD4A3u, 0x4D34u, 0x7E05u, 0x2B56u, 0x1867u,
        0x1B98u, 0x28A9u, 0x7DFAu, 0x4ECBu, 0xD75Cu, 0xE46Du, 0xB13Eu, 0x820Fu,
        0x9231u, 0xA100u, 0xF453u, 0xC762u, 0x5EF5u, 0x6DC4u, 0x3897u, 0x0BA6u,
        0x18EBu, 0x2BDAu, 0x7E89u, 0x4DB8u, 0xD42Fu, 0xE71Eu, 0xB24Du, 0x817Cu,
        0x9142u, 0xA273u, 0xF720u, 0xC411u, 0x5D86u, 0x6EB7u, 0x3BE4u, 0x08D5u,
        0x1D7Eu, 0x2E4Fu, 0x7B1Cu, 0x482Du, 0xD1BAu, 0xE28Bu, 0xB7D8u, 0x84E9u,
        0x94D7u, 0xA7E6u, 0xF2B5u, 0xC184u, 0x5813u, 0x6B22u, 0x3E71u, 0x0D40u,
        0x1E0Du, 0x2D3Cu, 0x786Fu, 0x4B5Eu, 0xD2C9u, 0xE1F8u, 0xB4ABu, 0x879Au,
        0x97A4u, 0xA495u, 0xF1C6u, 0xC2F7u, 0x5B60u, 0x6851u, 0x3D02u, 0x0E33u,
        0x1654u, 0x2565u, 0x7036u, 0x4307u, 0xDA90u, 0xE9A1u, 0xBCF2u, 0x8FC3u,
        0x9FFDu, 0xACCCu, 0xF99Fu, 0xCAAEu, 0x5339u, 0x6008u, 0x355Bu, 0x066Au,
        0x1527u, 0x2616u, 0x7345u, 0x4074u, 0xD9E3u, 0xEAD2u, 0xBF81u, 0x8CB0u,
        0x9C8Eu, 0xAFBFu, 0xFAECu, 0xC9DDu, 0x504Au, 0x637Bu, 0x3628u, 0x0519u,
        0x10B2u, 0x2383u, 0x76D0u, 0x45E1u, 0xDC76u, 0xEF47u, 0xBA14u, 0x8925u,
        0x991Bu, 0xAA2Au, 0xFF79u, 0xCC48u, 0x55DFu, 0x66EEu, 0x33BDu, 0x008Cu,
        0x13C1u, 0x20F0u, 0x75A3u, 0x4692u, 0xDF05u, 0xEC34u, 0xB967u, 0x8A56u,
        0x9A68u, 0xA959u, 0xFC0Au, 0xCF3Bu, 0x56ACu, 0x659Du, 0x30CEu, 0x03FFu
    },
    {
        0x0000u, 0x3730u, 0x6E60u, 0x5950u, 0xDCC0u, 0xEBF0u, 0xB2A0u, 0x8590u,
        0xA9A1u, 0x9E91u, 0xC7C1u, 0xF0F1u, 0x7561u, 0x4251u, 0x1B01u, 0x2C31u,
        0x4363u, 0x7453u, 0x2D03u, 0x1A33u, 0x9FA3u, 0xA893u, 0xF1C3u, 0xC6F3u,
        0xEAC2u, 0xDDF2u, 0x84A2u, 0xB392u, 0x3602u, 0x0132u, 0x5862u, 0x6F52u,
        0x86C6u, 0xB1F6u, 0xE8A6u, 0xDF96u, 0x5A06u, 0x6D36u, 0x3466u, 0x0356u,
        0x2F67u, 0x1857u, 0x4107u, 0x7637u, 0xF3A7u, 0xC497u, 0x9DC7u, 0xAAF7u,
        0xC5A5u, 0xF295u, 0xABC5u, 0x9CF5u, 0x1965u, 0x2E55u, 0x7705u, 0x4035u,
        0x6C04u, 0x5B34u, 0x0264u, 0x3554u, 0xB0C4u, 0x87F4u, 0xDEA4u, 0xE994u,
        0x1DADu, 0x2A9Du, 0x73CDu, 0x44FDu, 0xC16Du, 0xF65Du, 0xAF0Du, 0x983Du,
        0xB40Cu, 0x833Cu, 0xDA6Cu, 0xED5Cu, 0x68CCu, 0x5FFCu, 0x06ACu, 0x319Cu,
        0x5ECEu, 0x69FEu, 0x30AEu, 0x079Eu, 0x820Eu, 0xB53Eu, 0xEC6Eu, 0xDB5Eu,
        0xF76Fu, 0xC05Fu, 0x990Fu, 0xAE3Fu, 0x2BAFu, 0x1C9Fu, 0x45CFu, 0x72FFu,
        0x9B6Bu, 0xAC5Bu, 0xF50Bu, 0xC23Bu, 0x47ABu, 0x709Bu, 0x29CBu, 0x1EFBu,
        0x32CAu, 0x05FAu, 0x5CAAu, 0x6B9Au, 0xEE0Au, 0xD93Au, 0x806Au, 0xB75Au,
        0xD808u, 0xEF38u, 0xB668u, 0x8158u, 0x04C8u, 0x33F8u, 0x6AA8u, 0x5D98u,
        0x71A9u, 0x4699u, 0x1FC9u, 0x28F9u, 0xAD69u, 0x9A59u, 0xC309u, 0xF439u,
        0x3B5Au, 0x0C6Au, 0x553Au, 0x620Au, 0xE79Au, 0xD0AAu, 0x89FAu, 0xBECAu,
        0x92FBu, 0xA5CBu, 0xFC9Bu, 0xCBABu, 0x4E3Bu, 0x790Bu, 0x205Bu, 0x176Bu,
        0x7839u, 0x4F09u, 0x1659u, 0x2169u, 0xA4F9u, 0x93C9u, 0xCA99u, 0xFDA9u,
        0xD198u, 0xE6A8u, 0xBFF8u, 0x88C8u, 0x0D58u, 0x3A68u, 0x6338u, 0x5408u,
        0xBD9Cu, 0x8AACu, 0xD3FCu, 0xE4CCu, 0x615Cu, 0x566Cu, 0x0F3Cu, 0x380Cu,
        0x143Du, 0x230Du, 0x7A5Du, 0x4D6Du, 0xC8FDu, 0xFFCDu, 0xA69Du, 0x91ADu,
        0xFEFFu, 0xC9CFu, 0x909Fu, 0xA7AFu, 0x223Fu, 0x150Fu, 0x4C5Fu, 0x7B6Fu,
        0x575Eu, 0x606Eu, 0x393Eu, 0x0E0Eu, 0x8B9Eu, 0xBCAEu, 0xE5FEu, 0xD2CEu,
        0x26F7u, 0x11C7u, 0x4897u, 0x7FA7u, 0xFA37u, 0xCD07u, 0x9457u, 0xA367u,
        0x8F56u, 0xB866u, 0xE136u, 0xD606u, 0x5396u, 0x64A6u, 0x3DF6u, 0x0AC6u,
        0x6594u, 0x52A4u, 0x0BF4u, 0x3CC4u, 0xB954u, 0x8E64u, 0xD734u, 0xE004u,
        0xCC35u, 0xFB05u, 0xA255u, 0x9565u, 0x10F5u, 0x27C5u, 0x7E95u, 0x49A5u,
        0xA031u, 0x9701u, 0xCE51u, 0xF961u, 0x7CF1u, 0x4BC1u, 0x1291u, 0x25A1u,
        0x0990u, 0x3EA0u, 0x67F0u, 0x50C0u, 0xD550u, 0xE260u, 0xBB30u, 0x8C00u,
        0xE352u, 0xD462u, 0x8D32u, 0xBA02u, 0x3F92u, 0x08A2u, 0x51F2u, 0x66C2u,
        0x4AF3u, 0x7DC3u, 0x2493u, 0x13A3u, 0x9633u, 0xA103u, 0xF853u, 0xCF63u
    },
    {
        0x0000u, 0x76B4u, 0xED68u, 0x9BDCu, 0xCAF1u, 0xBC45u, 0x2799u, 0x512Du,
        0x85C3u, 0xF377u, 0x68ABu, 0x1E1Fu, 0x4F32u, 0x3986u, 0xA25Au, 0xD4EEu,
        0x1BA7u, 0x6D13u, 0xF6CFu, 0x807Bu, 0xD156u, 0xA7E2u, 0x3C3Eu, 0x4A8Au,
        0x9E64u, 0xE8D0u, 0x730Cu, 0x05B8u, 0x5495u, 0x2221u, 0xB9FDu, 0xCF49u,
        0x374Eu, 0x41FAu, 0xDA26u, 0xAC92u, 0xFDBFu, 0x8B0Bu, 0x10D7u, 0x6663u,
        0xB28Du, 0xC439u, 0x5FE5u, 0x2951u, 0x787Cu, 0x0EC8u, 0x9514u, 0xE3A0u,
        0x2CE9u, 0x5A5Du, 0xC181u, 0xB735u, 0xE618u, 0x90ACu, 0x0B70u, 0x7DC4u,
        0xA92Au, 0xDF9Eu, 0x4442u, 0x32F6u, 0x63DBu, 0x156Fu, 0x8EB3u, 0xF807u,
        0x6E9Cu, 0x1828u, 0x83F4u, 0xF540u, 0xA46Du, 0xD2D9u, 0x4905u, 0x3FB1u,
        0xEB5Fu, 0x9DEBu, 0x0637u, 0x7083u, 0x21AEu, 0x571Au, 0xCCC6u, 0xBA72u,
        0x753Bu, 0x038Fu, 0x9853u, 0xEEE7u, 0xBFCAu, 0xC97Eu, 0x52A2u, 0x2416u,
        0xF0F8u, 0x864Cu, 0x1D90u, 0x6B24u, 0x3A09u, 0x4CBDu, 0xD761u, 0xA1D5u,
        0x59D2u, 0x2F66u, 0xB4BAu, 0xC20Eu, 0x9323u, 0xE597u, 0x7E4Bu, 0x08FFu,
        0xDC11u, 0xAAA5u, 0x3179u, 0x47CDu, 0x16E0u, 0x6054u, 0xFB88u, 0x8D3Cu,
        0x4275u, 0x34C1u, 0xAF1Du, 0xD9A9u, 0x8884u, 0xFE30u, 0x65ECu, 0x1358u,
        0xC7B6u, 0xB102u, 0x2ADEu, 0x5C6Au, 0x0D47u, 0x7BF3u, 0xE02Fu, 0x969Bu,
        0xDD38u, 0xAB8Cu, 0x3050u, 0x46E4u, 0x17C9u, 0x617Du, 0xFAA1u, 0x8C15u,
        0x58FBu, 0x2E4Fu, 0xB593u, 0xC327u, 0x920Au, 0xE4BEu, 0x7F62u, 0x09D6u,
        0xC69Fu, 0xB02Bu, 0x2BF7u, 0x5D43u, 0x0C6Eu, 0x7ADAu, 0xE106u, 0x97B2u,
        0x435Cu, 0x35E8u, 0xAE34u, 0xD880u, 0x89ADu, 0xFF19u, 0x64C5u, 0x1271u,
        0xEA76u, 0x9CC2u, 0x071Eu, 0x71AAu, 0x2087u, 0x5633u, 0xCDEFu, 0xBB5Bu,
        0x6FB5u, 0x1901u, 0x82DDu, 0xF469u, 0xA544u, 0xD3F0u, 0x482Cu, 0x3E98u,
        0xF1D1u, 0x8765u, 0x1CB9u, 0x6A0Du, 0x3B20u, 0x4D94u, 0xD648u, 0xA0FCu,
        0x7412u, 0x02A6u, 0x997Au, 0xEFCEu, 0xBEE3u, 0xC857u, 0x538Bu, 0x253Fu,
        0xB3A4u, 0xC510u, 0x5ECCu, 0x2878u, 0x7955u, 0x0FE1u, 0x943Du, 0xE289u,
        0x3667u, 0x40D3u, 0xDB0Fu, 0xADBBu, 0xFC96u, 0x8A22u, 0x11FEu, 0x674Au,
        0xA803u, 0xDEB7u, 0x456Bu, 0x33DFu, 0x62F2u, 0x1446u, 0x8F9Au, 0xF92Eu,
        0x2DC0u, 0x5B74u, 0xC0A8u, 0xB61Cu, 0xE731u, 0x9185u, 0x0A59u, 0x7CEDu,
        0x84EAu, 0xF25Eu, 0x6982u, 0x1F36u, 0x4E1Bu, 0x38AFu, 0xA373u, 0xD5C7u,
        0x0129u, 0x779Du, 0xEC41u, 0x9AF5u, 0xCBD8u, 0xBD6Cu, 0x26B0u, 0x5004u,
        0x9F4Du, 0xE9F9u, 0x7225u, 0x0491u, 0x55BCu, 0x2308u, 0xB8D4u, 0xCE60u,
        0x1A8Eu, 0x6C3Au, 0xF7E6u, 0x8152u, 0xD07Fu, 0xA6CBu, 0x3D17u, 0x4BA3u
    }
};

uint16_t fsw_crc16_update(uint16_t crc, const uint8_t *data, size_t n)
{
    size_t i = 0;
    for (; i + 4u <= n; i += 4u) {
        crc = (uint16_t)(crc16_tables[3][(uint8_t)((crc >> 8) ^ data[i])] ^
                         crc16_tables[2][(uint8_t)(crc ^ data[i + 1u])] ^
                         crc16_tables[1][data[i + 2u]] ^
                         crc16_tables[0][data[i + 3u]]);
    }
    for (; i < n; i++) {
        crc = (uint16_t)((uint16_t)(crc << 8) ^ crc16_tables[0][(uint8_t)((crc >> 8) ^ data[i])]);
    }
    return crc;
}

uint16_t fsw_crc16(const uint8_t *data, size_t n)
{
    return fsw_crc16_update(0xFFFFu, data, n);
}

/* ----------------------------------------------------------------- COBS */

size_t fsw_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    /* One group per step: up to 254 non-zero bytes, copied whole, behind their code byte
     * (run + 1). A group ends at a 0x00 of the input (which the code byte stands for) or after
     * 254 bytes (code 0xFF, no 0x00 implied). The input's end closes the last group; a full
     * group at the very end needs no extra code byte, a 0x00 at the very end leaves an empty
     * last group (code 1). Returns 0 if the output would not fit in cap bytes. */
    size_t i = 0;  /* next input byte */
    size_t o = 0;  /* next output byte */

    for (;;) {
        size_t left = n - i;
        size_t limit = left < 254u ? left : 254u;
        const uint8_t *zero = (const uint8_t *)memchr(in + i, 0, limit);
        size_t run = zero != NULL ? (size_t)(zero - (in + i)) : limit;
        if (run + 1u > cap - o) {
            return 0;
        }
        out[o] = (uint8_t)(run + 1u);
        memcpy(out + o + 1u, in + i, run);
        o += run + 1u;
        i += run;
        if (zero != NULL) {
            i++;            /* the 0x00 the code byte stands for: a group follows, if empty */
        } else if (i == n) {
            return o;       /* the input ends this group (a full one needs nothing more) */
        }
    }
}

int fsw_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t i = 0;
    size_t o = 0;

    while (i < n) {
        uint8_t code = in[i];
        size_t k;
        if (code == 0u) {
            return -1;
        }
        i++;
        if (i + (size_t)(code - 1u) > n) {
            return -1;  /* group runs past the end */
        }
        k = (size_t)(code - 1u);  /* data bytes in this group: none may be 0x00 */
        if (k > 0u) {
            if (memchr(in + i, 0, k) != NULL || k > cap - o) {
                return -1;
            }
            memmove(out + o, in + i, k);  /* in place (out == in) is allowed: o < i */
            i += k;
            o += k;
        }
        if (i < n && code != 0xFFu) {
            if (o >= cap) {
                return -1;
            }
            out[o++] = 0u;
        }
    }
    *out_len = o;
    return 0;
}

/* --------------------------------------------------- little-endian bytes */

void fsw_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

void fsw_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

void fsw_put_u64(uint8_t *p, uint64_t v)
{
    fsw_put_u32(p, (uint32_t)(v & 0xFFFFFFFFu));
    fsw_put_u32(p + 4, (uint32_t)(v >> 32));
}

void fsw_put_f32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);   /* IEEE 754 binary32 bit pattern */
    fsw_put_u32(p, u);
}

void fsw_put_f64(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);   /* IEEE 754 binary64 bit pattern */
    fsw_put_u64(p, u);
}

uint16_t fsw_get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

uint32_t fsw_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint64_t fsw_get_u64(const uint8_t *p)
{
    return (uint64_t)fsw_get_u32(p) | ((uint64_t)fsw_get_u32(p + 4) << 32);
}

float fsw_get_f32(const uint8_t *p)
{
    uint32_t u = fsw_get_u32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

double fsw_get_f64(const uint8_t *p)
{
    uint64_t u = fsw_get_u64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* ------------------------------------------------------------- messages */

int fsw_body_len(uint8_t msg_type)
{
    switch (msg_type) {
    case FSW_MSG_HELLO:      return (int)FSW_LEN_HELLO;
    case FSW_MSG_CONFIG:     return (int)FSW_LEN_CONFIG;
    case FSW_MSG_CONFIG_ACK: return (int)FSW_LEN_CONFIG_ACK;
    case FSW_MSG_SENSORS:    return (int)FSW_LEN_SENSORS;
    case FSW_MSG_COMMAND:    return (int)FSW_LEN_COMMAND;
    case FSW_MSG_TELEMETRY:  return (int)FSW_LEN_TELEMETRY;
    default:                 return -1;
    }
}

static void pack_f32v(uint8_t *p, const float *v, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        fsw_put_f32(p + 4u * i, v[i]);
    }
}

static void unpack_f32v(const uint8_t *p, float *v, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        v[i] = fsw_get_f32(p + 4u * i);
    }
}

static void pack_body(const fsw_msg_t *m, uint8_t *b)
{
    unsigned i;
    switch (m->hdr.msg_type) {
    case FSW_MSG_HELLO: {
        const fsw_hello_t *h = &m->body.hello;
        fsw_put_u16(b + 0, h->protocol_version);
        fsw_put_u16(b + 2, h->reserved);
        fsw_put_u32(b + 4, h->firmware_id);
        for (i = 0; i < 16u; i++) {
            b[8u + i] = (uint8_t)h->firmware_name[i];
        }
        break;
    }
    case FSW_MSG_CONFIG:
        fsw_put_u16(b + 0, m->body.config.param_id);
        fsw_put_u16(b + 2, m->body.config.flags);
        fsw_put_f64(b + 4, m->body.config.value);
        break;
    case FSW_MSG_CONFIG_ACK:
        fsw_put_u16(b + 0, m->body.config_ack.param_id);
        fsw_put_u16(b + 2, m->body.config_ack.status);
        fsw_put_f64(b + 4, m->body.config_ack.value);
        break;
    case FSW_MSG_SENSORS: {
        const fsw_sensors_t *s = &m->body.sensors;
        pack_f32v(b + 0, s->imu_dv_body, 3);
        pack_f32v(b + 12, s->imu_dtheta_body, 3);
        fsw_put_u32(b + 24, s->imu_dt_us);
        fsw_put_f32(b + 28, s->lrf_range);
        fsw_put_u64(b + 32, s->lrf_sample_t_us);
        b[40] = s->flags;
        b[41] = s->reserved[0];
        b[42] = s->reserved[1];
        b[43] = s->reserved[2];
        for (i = 0; i < 3u; i++) {
            fsw_put_f64(b + 44u + 8u * i, s->imu_dv_accum_body[i]);
            fsw_put_f64(b + 68u + 8u * i, s->imu_dtheta_accum_body[i]);
        }
        break;
    }
    case FSW_MSG_COMMAND: {
        const fsw_command_t *c = &m->body.command;
        fsw_put_f32(b + 0, c->throttle);
        pack_f32v(b + 4, c->torque_body, 3);
        fsw_put_u16(b + 16, c->sensors_seq);
        b[18] = c->mode;
        b[19] = c->flags;
        fsw_put_u32(b + 20, c->reserved);
        break;
    }
    case FSW_MSG_TELEMETRY: {
        const fsw_telemetry_t *t = &m->body.telemetry;
        for (i = 0; i < 3u; i++) {
            fsw_put_f64(b + 8u * i, t->est_r_mci[i]);
        }
        pack_f32v(b + 24, t->est_v_mci, 3);
        pack_f32v(b + 36, t->est_q_mci_body, 4);
        fsw_put_f32(b + 52, t->est_alt);
        fsw_put_f32(b + 56, t->lrf_innovation);
        b[60] = t->phase;
        b[61] = t->lrf_status;
        fsw_put_u16(b + 62, t->lrf_rejects);
        fsw_put_u16(b + 64, t->rx_crc_errors);
        fsw_put_u16(b + 66, t->rx_framing_errors);
        fsw_put_u16(b + 68, t->rx_length_errors);
        fsw_put_u16(b + 70, t->rx_unknown_msgs);
        fsw_put_u16(b + 72, t->rx_frames_ok);
        fsw_put_u16(b + 74, t->cycle_overruns);
        fsw_put_u16(b + 76, t->sensors_gaps);
        fsw_put_u16(b + 78, t->sensors_rejected);
        fsw_put_u32(b + 80, t->fault_flags);
        break;
    }
    default:
        break;
    }
}

static void unpack_body(const uint8_t *b, fsw_msg_t *m)
{
    unsigned i;
    switch (m->hdr.msg_type) {
    case FSW_MSG_HELLO: {
        fsw_hello_t *h = &m->body.hello;
        h->protocol_version = fsw_get_u16(b + 0);
        h->reserved = fsw_get_u16(b + 2);
        h->firmware_id = fsw_get_u32(b + 4);
        for (i = 0; i < 16u; i++) {
            h->firmware_name[i] = (char)b[8u + i];
        }
        break;
    }
    case FSW_MSG_CONFIG:
        m->body.config.param_id = fsw_get_u16(b + 0);
        m->body.config.flags = fsw_get_u16(b + 2);
        m->body.config.value = fsw_get_f64(b + 4);
        break;
    case FSW_MSG_CONFIG_ACK:
        m->body.config_ack.param_id = fsw_get_u16(b + 0);
        m->body.config_ack.status = fsw_get_u16(b + 2);
        m->body.config_ack.value = fsw_get_f64(b + 4);
        break;
    case FSW_MSG_SENSORS: {
        fsw_sensors_t *s = &m->body.sensors;
        unpack_f32v(b + 0, s->imu_dv_body, 3);
        unpack_f32v(b + 12, s->imu_dtheta_body, 3);
        s->imu_dt_us = fsw_get_u32(b + 24);
        s->lrf_range = fsw_get_f32(b + 28);
        s->lrf_sample_t_us = fsw_get_u64(b + 32);
        s->flags = b[40];
        s->reserved[0] = b[41];
        s->reserved[1] = b[42];
        s->reserved[2] = b[43];
        for (i = 0; i < 3u; i++) {
            s->imu_dv_accum_body[i] = fsw_get_f64(b + 44u + 8u * i);
            s->imu_dtheta_accum_body[i] = fsw_get_f64(b + 68u + 8u * i);
        }
        break;
    }
    case FSW_MSG_COMMAND: {
        fsw_command_t *c = &m->body.command;
        c->throttle = fsw_get_f32(b + 0);
        unpack_f32v(b + 4, c->torque_body, 3);
        c->sensors_seq = fsw_get_u16(b + 16);
        c->mode = b[18];
        c->flags = b[19];
        c->reserved = fsw_get_u32(b + 20);
        break;
    }
    case FSW_MSG_TELEMETRY: {
        fsw_telemetry_t *t = &m->body.telemetry;
        for (i = 0; i < 3u; i++) {
            t->est_r_mci[i] = fsw_get_f64(b + 8u * i);
        }
        unpack_f32v(b + 24, t->est_v_mci, 3);
        unpack_f32v(b + 36, t->est_q_mci_body, 4);
        t->est_alt = fsw_get_f32(b + 52);
        t->lrf_innovation = fsw_get_f32(b + 56);
        t->phase = b[60];
        t->lrf_status = b[61];
        t->lrf_rejects = fsw_get_u16(b + 62);
        t->rx_crc_errors = fsw_get_u16(b + 64);
        t->rx_framing_errors = fsw_get_u16(b + 66);
        t->rx_length_errors = fsw_get_u16(b + 68);
        t->rx_unknown_msgs = fsw_get_u16(b + 70);
        t->rx_frames_ok = fsw_get_u16(b + 72);
        t->cycle_overruns = fsw_get_u16(b + 74);
        t->sensors_gaps = fsw_get_u16(b + 76);
        t->sensors_rejected = fsw_get_u16(b + 78);
        t->fault_flags = fsw_get_u32(b + 80);
        break;
    }
    default:
        break;
    }
}

size_t fsw_msg_pack(const fsw_msg_t *msg, uint8_t *packet, size_t cap)
{
    int blen = fsw_body_len(msg->hdr.msg_type);
    size_t total;
    uint16_t crc;

    if (blen < 0) {
        return 0;
    }
    total = FSW_HDR_LEN + (size_t)blen + FSW_CRC_LEN;
    if (cap < total) {
        return 0;
    }
    packet[0] = msg->hdr.version;
    packet[1] = msg->hdr.msg_type;
    fsw_put_u16(packet + 2, msg->hdr.seq);
    fsw_put_u64(packet + 4, msg->hdr.t_us);
    pack_body(msg, packet + FSW_HDR_LEN);
    crc = fsw_crc16(packet, FSW_HDR_LEN + (size_t)blen);
    fsw_put_u16(packet + FSW_HDR_LEN + (size_t)blen, crc);
    return total;
}

size_t fsw_msg_encode_frame(const fsw_msg_t *msg, uint8_t *frame, size_t cap)
{
    uint8_t packet[FSW_MAX_PACKET];
    size_t plen = fsw_msg_pack(msg, packet, sizeof packet);
    size_t elen;

    if (plen == 0u || cap < 2u) {
        return 0;
    }
    elen = fsw_cobs_encode(packet, plen, frame, cap - 1u);
    if (elen == 0u) {
        return 0;
    }
    frame[elen] = 0u;
    return elen + 1u;
}

fsw_rx_result_t fsw_msg_unpack(const uint8_t *packet, size_t n, fsw_msg_t *msg)
{
    uint16_t crc_rx;
    int blen;

    if (n < FSW_HDR_LEN + FSW_CRC_LEN) {
        return FSW_RX_FRAMING;  /* truncated */
    }
    crc_rx = fsw_get_u16(packet + n - FSW_CRC_LEN);
    if (fsw_crc16(packet, n - FSW_CRC_LEN) != crc_rx) {
        return FSW_RX_CRC;
    }
    msg->hdr.version = packet[0];
    msg->hdr.msg_type = packet[1];
    msg->hdr.seq = fsw_get_u16(packet + 2);
    msg->hdr.t_us = fsw_get_u64(packet + 4);
    if (msg->hdr.version != FSW_PROTO_VERSION) {
        return FSW_RX_LENGTH;
    }
    blen = fsw_body_len(msg->hdr.msg_type);
    if (blen < 0) {
        return FSW_RX_UNKNOWN;
    }
    if (n != FSW_HDR_LEN + (size_t)blen + FSW_CRC_LEN) {
        return FSW_RX_LENGTH;
    }
    unpack_body(packet + FSW_HDR_LEN, msg);
    return FSW_RX_OK;
}

/* --------------------------------------------------------------- parser */

void fsw_parser_init(fsw_parser_t *p)
{
    memset(p, 0, sizeof *p);
}

static fsw_rx_result_t parser_end_frame(fsw_parser_t *p, fsw_msg_t *msg)
{
    size_t plen = 0;
    fsw_rx_result_t r;

    if (p->discarding) {
        return FSW_RX_FRAMING;  /* already counted when the run went oversize */
    }
    if (p->len == 0u) {
        return FSW_RX_EMPTY;
    }
    /* COBS decodes in place: the output never outruns the input. */
    if (fsw_cobs_decode(p->buf, p->len, p->buf, sizeof p->buf, &plen) != 0) {
        r = FSW_RX_FRAMING;
    } else {
        r = fsw_msg_unpack(p->buf, plen, msg);
    }
    switch (r) {
    case FSW_RX_OK:      p->frames_ok++; break;
    case FSW_RX_FRAMING: p->framing_errors++; break;
    case FSW_RX_CRC:     p->crc_errors++; break;
    case FSW_RX_LENGTH:  p->length_errors++; break;
    case FSW_RX_UNKNOWN: p->unknown_msgs++; break;
    case FSW_RX_EMPTY:   break;
    default:             break;
    }
    return r;
}

int fsw_parser_push(fsw_parser_t *p, uint8_t byte, fsw_msg_t *msg)
{
    if (byte == 0u) {
        fsw_rx_result_t r = parser_end_frame(p, msg);
        p->last_result = (uint8_t)r;
        p->len = 0;
        p->discarding = 0;
        return r == FSW_RX_OK ? 1 : 0;
    }
    if (p->discarding) {
        return 0;
    }
    if (p->len >= FSW_MAX_ENCODED) {
        /* More than 253 bytes before a delimiter: oversize, drop up to the next 0x00. */
        p->framing_errors++;
        p->discarding = 1;
        p->len = 0;
        return 0;
    }
    p->buf[p->len++] = byte;
    return 0;
}

size_t fsw_parser_feed(fsw_parser_t *p, const uint8_t *data, size_t n, fsw_msg_cb_t cb, void *user)
{
    /* Byte for byte what fsw_parser_push does, a run at a time: the bytes up to the next 0x00
     * are copied in one go (or dropped, oversize), the 0x00 ends the frame through push. */
    size_t i = 0;
    size_t good = 0;
    fsw_msg_t msg;

    while (i < n) {
        const uint8_t *zero = (const uint8_t *)memchr(data + i, 0, n - i);
        size_t run = (zero != NULL ? (size_t)(zero - data) : n) - i;  /* bytes before it */
        if (run > 0u && !p->discarding) {
            if (run > FSW_MAX_ENCODED - (size_t)p->len) {
                /* More than 253 bytes before a delimiter: oversize, drop up to the next 0x00. */
                p->framing_errors++;
                p->discarding = 1;
                p->len = 0;
            } else {
                memcpy(p->buf + p->len, data + i, run);
                p->len = (uint16_t)(p->len + run);
            }
        }
        i += run;
        if (zero != NULL) {
            if (fsw_parser_push(p, 0u, &msg)) {
                good++;
                if (cb != NULL) {
                    cb(user, &msg);
                }
            }
            i++;
        }
    }
    return good;
}
